"""Objects in the embedded S3 as a job sees them: S3Prefix downloads into a directory, uploads of one."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from gitops.local.executor.errors import StepFailed

# Many small objects (the offline store writes one file per event-time hour): transfers side by side.
TRANSFER_THREADS = 8


def _each(work: Iterable[tuple], call) -> None:
    items = list(work)
    if len(items) < 2:
        for item in items:
            call(*item)
        return
    with ThreadPoolExecutor(max_workers=TRANSFER_THREADS, thread_name_prefix="gitops-s3") as pool:
        for _ in pool.map(lambda item: call(*item), items):
            pass


def upload_files(s3: Any, files: Iterable[tuple[Path, str, str]]) -> None:
    """(local file, bucket, key) each, side by side."""
    # put_object, not upload_file: s3transfer's per-call thread pool costs more than these small files.
    _each(files, lambda path, bucket, key: s3.put_object(Bucket=bucket, Key=key, Body=Path(path).read_bytes()))


def split_uri(uri: str, where: str) -> tuple[str, str]:
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise StepFailed(f"{where}: {uri!r} is not an s3:// URI")
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def list_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", []) if not obj["Key"].endswith("/"))
    return keys


def download_prefix(s3: Any, uri: str, local_dir: Path, where: str) -> list[Path]:
    """Every object under an S3Prefix into local_dir, as SageMaker lays it out; fails when there is none.

    Each key keeps its path below the prefix: under s3://b/datasets/customers/ the object
    <execution id>/customers.csv lands as <execution id>/customers.csv; a URI naming one object
    (s3://b/assets/<sha>/features.py) lands as its file name.
    """
    bucket, prefix = split_uri(uri, where)
    try:
        keys = list_keys(s3, bucket, prefix)
    except s3.exceptions.NoSuchBucket:
        raise StepFailed(f"{where}: bucket {bucket} does not exist") from None
    if not keys:
        raise StepFailed(f"{where}: no S3 objects found under {uri}")
    local_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for key in keys:
        target = local_dir / (key[len(prefix) :].lstrip("/") or key.rsplit("/", 1)[-1])
        target.parent.mkdir(parents=True, exist_ok=True)
        written.append(target)
    _each(
        zip(keys, written, strict=True),
        lambda key, target: target.write_bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read()),
    )
    return written


def upload_dir(s3: Any, local_dir: Path, uri: str, where: str) -> list[str]:
    """Every file under local_dir to uri/<relative path>; the keys written."""
    bucket, prefix = split_uri(uri, where)
    prefix = prefix.rstrip("/")
    files = sorted(p for p in local_dir.rglob("*") if p.is_file())
    keys = [
        f"{prefix}/{p.relative_to(local_dir).as_posix()}" if prefix else p.relative_to(local_dir).as_posix()
        for p in files
    ]
    upload_files(s3, ((path, bucket, key) for path, key in zip(files, keys, strict=True)))
    return keys


def read_object(s3: Any, uri: str, where: str) -> bytes:
    bucket, key = split_uri(uri, where)
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        raise StepFailed(f"{where}: {uri} does not exist") from None
