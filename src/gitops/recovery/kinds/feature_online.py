"""Feature Store online records: the latest record per id that serving reads (Feature Store runtime API).

The runtime has no API to list an online store, so the records backed up are those of the ids given
(`--online-record-id`); without ids the online store is rebuilt by re-ingesting from the offline store.
moto has no Feature Store runtime, so on the embedded target this kind is skipped and says so; the
calls below are the AWS API's shapes (BatchGetRecord, GetRecord, PutRecord), checked by botocore's Stubber.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gitops.files import atomic_write
from gitops.recovery.inventory import Difference, RestoreOutcome, Skipped, StageContext
from gitops.recovery.manifest import BackupError, ManifestEntry, entry_for

RUNTIME = "sagemaker-featurestore-runtime"
BATCH = 100  # BatchGetRecord's limit of identifiers per feature group
RETRIES = 3  # BatchGetRecord may leave identifiers unprocessed (throttling): asked again


def _sorted(record: list[dict]) -> list[dict]:
    return sorted(record, key=lambda f: f["FeatureName"])


class FeatureStoreOnline:
    name = "feature-online"
    holds = "Feature Store online records (the latest features per record id, read at serving time)"
    comes_back = "restored for the ids backed up (PutRecord); otherwise rebuilt by re-ingesting the offline store"

    def backup(self, ctx: StageContext, objects: Path) -> list[ManifestEntry] | Skipped:
        if ctx.target.is_local:
            return Skipped("the embedded target has no Feature Store runtime (moto does not emulate it)")
        if not ctx.online_record_ids:
            return Skipped("no record ids given: the online store cannot be listed; rebuild it by re-ingesting")
        runtime: Any = ctx.client(RUNTIME)
        group = ctx.stage.feature_group_name
        records: dict[str, list[dict]] = {}
        ids = sorted(set(ctx.online_record_ids))
        for start in range(0, len(ids), BATCH):
            pending = ids[start : start + BATCH]
            for _attempt in range(RETRIES):
                answer = runtime.batch_get_record(
                    Identifiers=[{"FeatureGroupName": group, "RecordIdentifiersValueAsString": pending}]
                )
                if answer.get("Errors"):
                    first = answer["Errors"][0]
                    raise BackupError(
                        f"BatchGetRecord {first.get('RecordIdentifierValueAsString')}: {first.get('ErrorMessage')}"
                    )
                for found in answer.get("Records", []):
                    records[found["RecordIdentifierValueAsString"]] = _sorted(found["Record"])
                unprocessed = answer.get("UnprocessedIdentifiers") or []
                pending = [i for u in unprocessed for i in u.get("RecordIdentifiersValueAsString", [])]
                if not pending:
                    break
            if pending:
                raise BackupError(f"BatchGetRecord left {len(pending)} records unprocessed after {RETRIES} tries")
        path = objects / self.name / f"{group}.json"
        atomic_write(path, json.dumps(records, indent=2, sort_keys=True))
        arn = f"arn:aws:sagemaker:{ctx.stage.region}:{ctx.stage.account}:feature-group/{group}"
        return [
            entry_for(
                objects,
                path,
                kind=self.name,
                name=f"{group} ({len(records)} online records)",
                source_arn=arn,
                records=len(records),
            )
        ]

    def _differing(self, ctx: StageContext, objects: Path, entry: ManifestEntry) -> list[tuple[str, list[dict]]]:
        runtime: Any = ctx.client(RUNTIME)
        group = ctx.stage.feature_group_name
        wanted: dict[str, list[dict]] = json.loads((objects / entry.path).read_text(encoding="utf-8"))
        differing = []
        for record_id, record in sorted(wanted.items()):
            try:
                live = _sorted(
                    runtime.get_record(FeatureGroupName=group, RecordIdentifierValueAsString=record_id).get(
                        "Record", []
                    )
                )
            except runtime.exceptions.ResourceNotFound:
                live = []
            if live != record:
                differing.append((record_id, record))
        return differing

    def restore(self, ctx: StageContext, objects: Path, entries: list[ManifestEntry]) -> RestoreOutcome:
        outcome = RestoreOutcome()
        runtime: Any = ctx.client(RUNTIME)
        for entry in entries:
            differing = self._differing(ctx, objects, entry)
            for record_id, record in differing:
                runtime.put_record(FeatureGroupName=ctx.stage.feature_group_name, Record=record)
                outcome.changed.append(f"online record {record_id}")
            outcome.unchanged += int(entry.detail["records"]) - len(differing)
        return outcome

    def compare(self, ctx: StageContext, objects: Path, entries: list[ManifestEntry]) -> list[Difference]:
        return [
            Difference(self.name, f"online record {record_id}", "missing or different")
            for entry in entries
            for record_id, _ in self._differing(ctx, objects, entry)
        ]
