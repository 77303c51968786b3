"""Put the release page where the approval click finds it: the stage's artifact bucket, under reports/<release id>/."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from gitops.config import StageConfig, kms_alias_arn
from gitops.files import atomic_write
from gitops.target import Target

PAGE_PREFIX = "reports"
PAGE_NAME = "release.html"
# Exported by the Verify build (buildspecs/verify.yml); the approval action names them
# (infra/components/pipeline_actions.py).
RELEASE_ID_VARIABLE = "RELEASE_ID"
PAGE_URL_VARIABLE = "RELEASE_PAGE_URL"


@dataclass(frozen=True)
class PageLocation:
    s3_uri: str
    console_url: str  # the S3 console's object view: opens for anyone allowed to read the bucket, never expires


def page_key(release_id: str) -> str:
    return f"{PAGE_PREFIX}/{release_id}/{PAGE_NAME}"


def page_location(cfg: StageConfig, release_id: str) -> PageLocation:
    key = page_key(release_id)
    bucket = cfg.artifact_bucket_name
    console = (
        f"https://{cfg.region}.console.aws.amazon.com/s3/object/{bucket}"
        f"?region={cfg.region}&bucketType=general&prefix={quote(key, safe='/')}"
    )
    return PageLocation(f"s3://{bucket}/{key}", console)


def upload_page(target: Target, cfg: StageConfig, release_id: str, html: str) -> PageLocation:
    """Upload the page (SSE-KMS under the stage key, as every object of the bucket) and say where it is."""
    s3 = target.client(cfg, "s3")
    s3.put_object(
        Bucket=cfg.artifact_bucket_name,
        Key=page_key(release_id),
        Body=html.encode("utf-8"),
        ContentType="text/html; charset=utf-8",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=kms_alias_arn(cfg),
    )
    return page_location(cfg, release_id)


def write_exports(path: Path, release_id: str, location: PageLocation | None) -> None:
    """A file the build's shell sources, so CodeBuild exports the variables the approval action names."""
    lines = [f"export {RELEASE_ID_VARIABLE}={shlex.quote(release_id)}"]
    if location is not None:
        lines.append(f"export {PAGE_URL_VARIABLE}={shlex.quote(location.console_url)}")
    atomic_write(path, "\n".join(lines) + "\n")
