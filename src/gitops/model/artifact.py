"""A stage's copy of the pinned artifact: checked by its bytes' sha256, copied into the stage's own bucket.

Every stage serves `s3://<its artifact bucket>/models/<sha256>/model.tar.gz`. Deploy of the stage
the model was trained in copies it there from the pinned URI; promotion copies it into the next
stage's bucket (reading with the source stage's credentials, writing with the target's). A copy is
made only after the bytes hash to the pin, and one already in place counts only when S3's checksum
of its bytes (or the bytes hashed here) equals the pin: so a changed or deleted training artifact
can never change what a stage serves.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from gitops.config import StageConfig, kms_alias_arn
from gitops.errors import DeployError, aws_error_text
from gitops.model.pin import PIN_PATH, ModelPinError, ServedModel

_MISSING = ("404", "NoSuchKey", "NotFound", "NoSuchBucket")


class ArtifactMissing(DeployError):
    """The pinned artifact is not where a stage can serve it from."""

    hint = "a stage other than the training one gets its copy from `gitops promote`; re-run the promotion"


@dataclass
class StagedArtifact:
    uri: str
    sha256: str
    how: str  # "in place (S3's ChecksumSHA256)" | "copied from s3://..." ...


def split_s3_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def read_sha256(s3: Any, bucket: str, key: str) -> tuple[str, str] | None:
    """(sha256 of the object's bytes, how it was learned), or None when it does not exist."""
    from gitops.deploy.live import object_sha256  # the one "checksum, else hash the bytes" reader

    try:
        digest, how, _head = object_sha256(s3, bucket, key)
    except ClientError as exc:
        if _code(exc) in _MISSING:
            return None
        raise
    return digest, how


def read_verified(s3: Any, uri: str, sha256: str) -> bytes:
    """The bytes at uri, refused unless they hash to sha256 (one line naming the pin and both digests)."""
    bucket, key = split_s3_uri(uri)
    try:
        data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if _code(exc) in _MISSING:
            raise ArtifactMissing(f"{PIN_PATH}: artifact {uri} does not exist ({aws_error_text(exc)})") from exc
        raise
    found = hashlib.sha256(data).hexdigest()
    if found != sha256:
        raise ModelPinError(
            f"{PIN_PATH}: artifact {uri} has sha256 {found[:12]}…, the pin says {sha256[:12]}…; refusing to serve it"
        )
    return data


def put_artifact(s3: Any, config: StageConfig, key: str, data: bytes) -> None:
    """Into the stage's bucket, encrypted with the stage key, S3 checking the SHA-256 in transit."""
    s3.put_object(
        Bucket=config.artifact_bucket_name,
        Key=key,
        Body=data,
        ChecksumAlgorithm="SHA256",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=kms_alias_arn(config),
    )


def ensure_stage_artifact(model: ServedModel, config: StageConfig, s3: Any, source_s3: Any | None) -> StagedArtifact:
    """The stage's copy of the pinned artifact, made from the pinned URI (via source_s3) when missing.

    source_s3 None: the stage may not read the source (another account); a missing copy is refused.
    """
    bucket, key = model.stage_artifact(config)
    uri = f"s3://{bucket}/{key}"
    found = read_sha256(s3, bucket, key)
    if found is not None:
        digest, how = found
        if digest == model.artifact.sha256:
            return StagedArtifact(uri, digest, f"in place ({how})")
        # Content-addressed: a different digest under this key was written by someone else; put it right.
    if source_s3 is None:
        what = "is missing" if found is None else f"holds sha256 {found[0][:12]}…, not the pin's"
        raise ArtifactMissing(
            f"stage '{config.stage}': {uri} {what}, and this stage does not read the training stage's bucket"
        )
    data = read_verified(source_s3, model.artifact.uri, model.artifact.sha256)
    put_artifact(s3, config, key, data)
    again = read_sha256(s3, bucket, key)
    if again is None or again[0] != model.artifact.sha256:
        raise DeployError(f"stage '{config.stage}': {uri} does not hash to the pin after the copy")
    return StagedArtifact(uri, model.artifact.sha256, f"copied from {model.artifact.uri} ({again[1]})")
