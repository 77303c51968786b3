"""Backup sets in the backup account's S3 bucket: Object Lock (compliance) and SSE-KMS, the manifest uploaded last.

A local set is copied object by object, each with its SHA-256 checksum (S3 refuses bytes that do not
match it) and a compliance-mode retention date; the manifest goes last, so a copy interrupted part-way
has no manifest in the bucket and is never taken for a backup. Downloading reads the manifest first.
"""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from gitops.deploy.aws import error_code
from gitops.files import atomic_write
from gitops.recovery.manifest import (
    MANIFEST_NAME,
    OBJECTS_DIR,
    BackupError,
    BackupIncomplete,
    check_objects,
    read_manifest,
)

PROFILE_ENV = "GITOPS_BACKUP_PROFILE"  # the backup account's credentials (a profile), else the default chain
DEFAULT_RETAIN_DAYS = 35


def parse_s3_url(url: str) -> tuple[str, str]:
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    if not url.startswith("s3://") or not bucket:
        raise BackupError(f"{url}: not an s3://bucket/prefix URL")
    return bucket, prefix.strip("/")


def backup_account_s3(endpoint_url: str | None = None, region: str | None = None) -> Any:
    """S3 acting in the backup account: its profile on AWS; moto's default account on the embedded target."""
    import boto3

    if endpoint_url:
        session = boto3.Session(aws_access_key_id="embedded", aws_secret_access_key="embedded", region_name=region)
    else:
        session = boto3.Session(profile_name=os.environ.get(PROFILE_ENV) or None, region_name=region)
    return session.client("s3", endpoint_url=endpoint_url)


def require_object_lock(s3: Any, bucket: str) -> int:
    """The bucket's default compliance retention in days; refuse a bucket that would let a backup be deleted."""
    try:
        config = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    except ClientError as exc:
        if error_code(exc) in ("ObjectLockConfigurationNotFoundError", "NoSuchBucket"):
            raise BackupError(
                f"s3://{bucket}: no Object Lock: backups there could be deleted",
                hint="create the backup bucket with Object Lock enabled and a COMPLIANCE default retention",
            ) from exc
        raise
    rule = config.get("Rule", {}).get("DefaultRetention", {})
    if config.get("ObjectLockEnabled") != "Enabled" or rule.get("Mode") != "COMPLIANCE":
        raise BackupError(
            f"s3://{bucket}: Object Lock default retention is {rule.get('Mode') or 'unset'}, not COMPLIANCE",
            hint="set a COMPLIANCE default retention: governance mode can be bypassed, compliance cannot",
        )
    return int(rule.get("Days") or DEFAULT_RETAIN_DAYS)


def upload_set(s3: Any, backup_dir: Path, url: str, *, kms_key_id: str | None = None) -> str:
    """Copy a complete local set to s3://bucket/prefix/<set>/, locked; the manifest last. Returns the set's URL."""
    bucket, prefix = parse_s3_url(url)
    days = require_object_lock(s3, bucket)
    manifest = read_manifest(backup_dir)
    check_objects(backup_dir, manifest)
    base = "/".join(p for p in (prefix, backup_dir.name) if p)
    lock = {
        "ObjectLockMode": "COMPLIANCE",
        "ObjectLockRetainUntilDate": datetime.now(UTC) + timedelta(days=days),
    }
    encryption = {"ServerSideEncryption": "aws:kms", **({"SSEKMSKeyId": kms_key_id} if kms_key_id else {})}
    for entry in manifest.entries:
        body = (backup_dir / OBJECTS_DIR / entry.path).read_bytes()
        s3.put_object(
            Bucket=bucket,
            Key=f"{base}/{OBJECTS_DIR}/{entry.path}",
            Body=body,
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=base64.b64encode(bytes.fromhex(entry.sha256)).decode(),
            **lock,
            **encryption,
        )
    s3.put_object(
        Bucket=bucket,
        Key=f"{base}/{MANIFEST_NAME}",
        Body=(backup_dir / MANIFEST_NAME).read_bytes(),
        ChecksumAlgorithm="SHA256",
        **lock,
        **encryption,
    )
    return f"s3://{bucket}/{base}"


def download_set(s3: Any, url: str, into: Path) -> Path:
    """The set at s3://bucket/<set> as a local directory: manifest first (none: interrupted), then each object."""
    bucket, key = parse_s3_url(url)
    target = into / key.rsplit("/", 1)[-1]
    try:
        text = s3.get_object(Bucket=bucket, Key=f"{key}/{MANIFEST_NAME}")["Body"].read()
    except ClientError as exc:
        if error_code(exc) in ("NoSuchKey", "404"):
            raise BackupIncomplete(f"{url}: no {MANIFEST_NAME}: an interrupted backup, not a backup") from exc
        raise
    atomic_write(target / MANIFEST_NAME, text)
    for entry in json.loads(text)["entries"]:
        body = s3.get_object(Bucket=bucket, Key=f"{key}/{OBJECTS_DIR}/{entry['path']}")["Body"].read()
        atomic_write(target / OBJECTS_DIR / entry["path"], body)
    return target
