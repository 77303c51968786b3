"""Feature Store offline store: the objects under the feature group's S3 URI (the training data's history)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from gitops.recovery.inventory import Difference, RestoreOutcome, Skipped, StageContext
from gitops.recovery.kinds.s3_objects import back_up_object, list_keys, object_difference, restore_object
from gitops.recovery.manifest import ManifestEntry

# The prefix infra gives the offline store in the artifact bucket (infra/stacks/mlops.py FEATURE_STORE_PREFIX).
DEFAULT_PREFIX = "feature-store/"


def offline_store_location(ctx: StageContext) -> tuple[str, str]:
    """(bucket, prefix) of the offline store: read from the live feature group, else where infra puts it."""
    try:
        group = ctx.client("sagemaker").describe_feature_group(FeatureGroupName=ctx.stage.feature_group_name)
        uri = group["OfflineStoreConfig"]["S3StorageConfig"]["S3Uri"]
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        return bucket, prefix.rstrip("/") + "/"
    except (ClientError, KeyError):
        return ctx.stage.artifact_bucket_name, DEFAULT_PREFIX


class FeatureStoreOffline:
    name = "feature-offline"
    holds = "Feature Store offline-store objects (every ingested record, the training sets' source)"
    comes_back = "restored: each object put back byte for byte into the offline store's S3 location"

    def backup(self, ctx: StageContext, objects: Path) -> list[ManifestEntry] | Skipped:
        s3: Any = ctx.client("s3")
        bucket, prefix = offline_store_location(ctx)
        keys = list_keys(s3, bucket, prefix)
        if not keys:
            return Skipped(f"s3://{bucket}/{prefix} holds no objects")
        return [back_up_object(s3, bucket, key, objects, self.name) for key in keys]

    def restore(self, ctx: StageContext, objects: Path, entries: list[ManifestEntry]) -> RestoreOutcome:
        s3 = ctx.client("s3")
        outcome = RestoreOutcome()
        for entry in entries:
            if restore_object(s3, objects, entry):
                outcome.changed.append(entry.name)
            else:
                outcome.unchanged += 1
        return outcome

    def compare(self, ctx: StageContext, objects: Path, entries: list[ManifestEntry]) -> list[Difference]:
        s3 = ctx.client("s3")
        found = []
        for entry in entries:
            why = object_difference(s3, entry)
            if why:
                found.append(Difference(self.name, entry.name, why))
        return found
