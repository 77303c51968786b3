"""Online records on the AWS API's shapes (botocore Stubber): moto has no Feature Store runtime."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from recovery_release import STAGES

from gitops.recovery.inventory import Skipped, StageContext
from gitops.recovery.kinds.feature_online import RUNTIME, FeatureStoreOnline
from gitops.target import Target

GROUP = STAGES["dev"].feature_group_name
RECORD = [{"FeatureName": "tenure_months", "ValueAsString": "3"}, {"FeatureName": "customer_id", "ValueAsString": "C1"}]


class StubbedContext(StageContext):
    def __init__(self, client: Any, ids: list[str]) -> None:
        super().__init__(STAGES["dev"], Target("aws"), online_record_ids=ids)
        self.stubbed = client

    def client(self, service: str) -> Any:
        assert service == RUNTIME
        return self.stubbed


def _runtime() -> tuple[Any, Stubber]:
    client = boto3.client(RUNTIME, region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    return client, Stubber(client)


def test_records_are_read_in_batches_and_put_back_only_where_they_differ(tmp_path: Path):
    client, stub = _runtime()
    stub.add_response(  # throttled: C2 left unprocessed, asked again
        "batch_get_record",
        {
            "Records": [{"FeatureGroupName": GROUP, "RecordIdentifierValueAsString": "C1", "Record": RECORD}],
            "Errors": [],
            "UnprocessedIdentifiers": [{"FeatureGroupName": GROUP, "RecordIdentifiersValueAsString": ["C2"]}],
        },
        {"Identifiers": [{"FeatureGroupName": GROUP, "RecordIdentifiersValueAsString": ["C1", "C2"]}]},
    )
    stub.add_response(
        "batch_get_record",
        {
            "Records": [{"FeatureGroupName": GROUP, "RecordIdentifierValueAsString": "C2", "Record": RECORD[:1]}],
            "Errors": [],
            "UnprocessedIdentifiers": [],
        },
        {"Identifiers": [{"FeatureGroupName": GROUP, "RecordIdentifiersValueAsString": ["C2"]}]},
    )
    with stub:
        (entry,) = FeatureStoreOnline().backup(StubbedContext(client, ["C2", "C1"]), tmp_path)  # type: ignore[misc]
    stub.assert_no_pending_responses()
    kept = json.loads((tmp_path / entry.path).read_text())
    assert kept["C1"] == sorted(RECORD, key=lambda f: f["FeatureName"]) and entry.detail["records"] == 2
    del kept["C2"]
    (tmp_path / entry.path).write_text(json.dumps(kept))
    entry = entry.model_copy(update={"detail": {"records": 1}})

    client, stub = _runtime()  # after the wipe: the record is gone, so it is put back, once
    stub.add_client_error("get_record", "ResourceNotFound", http_status_code=404)
    stub.add_response("put_record", {}, {"FeatureGroupName": GROUP, "Record": kept["C1"]})
    with stub:
        outcome = FeatureStoreOnline().restore(StubbedContext(client, []), tmp_path, [entry])
    stub.assert_no_pending_responses()
    assert outcome.changed == ["online record C1"] and outcome.unchanged == 0

    client, stub = _runtime()  # a second restore finds it there and writes nothing
    stub.add_response(
        "get_record", {"Record": RECORD}, {"FeatureGroupName": GROUP, "RecordIdentifierValueAsString": "C1"}
    )
    with stub:
        again = FeatureStoreOnline().restore(StubbedContext(client, []), tmp_path, [entry])
    assert again.changed == [] and again.unchanged == 1


def test_without_ids_or_on_the_embedded_target_it_says_why_it_backs_up_nothing(tmp_path: Path):
    client, _ = _runtime()
    skipped = FeatureStoreOnline().backup(StubbedContext(client, []), tmp_path)
    assert isinstance(skipped, Skipped) and "re-ingesting" in skipped.reason
    local = StageContext(STAGES["dev"], Target("local", tmp_path, "http://127.0.0.1:9"), online_record_ids=["C1"])
    skipped = FeatureStoreOnline().backup(local, tmp_path)
    assert isinstance(skipped, Skipped) and "moto" in skipped.reason


@pytest.mark.parametrize(
    "errors",
    [
        [
            {
                "FeatureGroupName": GROUP,
                "RecordIdentifierValueAsString": "C9",
                "ErrorCode": "X",
                "ErrorMessage": "throttled",
            }
        ]
    ],
)
def test_a_record_that_cannot_be_read_fails_the_backup(tmp_path: Path, errors):
    from gitops.recovery.manifest import BackupError

    client, stub = _runtime()
    stub.add_response("batch_get_record", {"Records": [], "Errors": errors, "UnprocessedIdentifiers": []})
    with stub, pytest.raises(BackupError, match="C9: throttled"):
        FeatureStoreOnline().backup(StubbedContext(client, ["C9"]), tmp_path)
