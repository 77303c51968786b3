"""S3 objects in and out of a backup set, each judged by the sha256 of its bytes (never by an ETag)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from gitops.deploy.aws import error_code
from gitops.files import atomic_write
from gitops.recovery.manifest import ManifestEntry, entry_for, file_sha256

_MISSING = ("NoSuchKey", "404", "NoSuchBucket", "NotFound")


def object_arn(bucket: str, key: str) -> str:
    return f"arn:aws:s3:::{bucket}/{key}"


def list_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    """Every key under prefix (empty if the bucket does not exist)."""
    keys: list[str] = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [obj["Key"] for obj in page.get("Contents", [])]
    except ClientError as exc:
        if error_code(exc) in _MISSING:
            return []
        raise
    return sorted(keys)


def live_sha256(s3: Any, bucket: str, key: str) -> str | None:
    """sha256 of the object's bytes as S3 returns them now; None if it does not exist."""
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if error_code(exc) in _MISSING:
            return None
        raise
    return hashlib.sha256(body).hexdigest()


def back_up_object(
    s3: Any, bucket: str, key: str, objects: Path, kind: str, folder: str = "", **detail: Any
) -> ManifestEntry:
    """Download s3://bucket/key into objects/<kind>/[<folder>/]<bucket>/<key> and describe it."""
    path = objects / kind / folder / bucket / key
    atomic_write(path, s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    return entry_for(
        objects,
        path,
        kind=kind,
        name=f"s3://{bucket}/{key}",
        source_arn=object_arn(bucket, key),
        bucket=bucket,
        key=key,
        **detail,
    )


def restore_object(s3: Any, objects: Path, entry: ManifestEntry) -> bool:
    """Put the object back unless S3 already holds these exact bytes; True if it was written."""
    bucket, key = entry.detail["bucket"], entry.detail["key"]
    if live_sha256(s3, bucket, key) == entry.sha256:
        return False
    path = objects / entry.path
    assert file_sha256(path) == entry.sha256, "checked before the restore began"
    s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes(), ChecksumAlgorithm="SHA256")
    return True


def object_difference(s3: Any, entry: ManifestEntry) -> str | None:
    """Why the live object is not the backed-up one (None: same bytes)."""
    found = live_sha256(s3, entry.detail["bucket"], entry.detail["key"])
    if found is None:
        return "missing"
    if found != entry.sha256:
        return f"sha256 {found[:12]}, backed up {entry.sha256[:12]}"
    return None
