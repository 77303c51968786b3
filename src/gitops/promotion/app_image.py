"""Promotion carries the app image: the pinned digest into the next stage's own repository, checked byte for byte.

The copy speaks the ECR registry API, as `crane copy` does: the manifest (and, for an index, each
child manifest) and every blob it names, each checked against its sha256 before it is written.
The target then holds the digest itself, so prod never pulls from dev. On the embedded target moto
keeps no blobs: the manifest is copied and checked, the layers are "not checked here" (said so).
"""

from __future__ import annotations

import hashlib
import json
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from gitops.config import StageConfig
from gitops.errors import GitopsError
from gitops.release.app_image import RELEASE_APP, read_release_app
from gitops.target import Target

INDEX_TYPES = {
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
}
MANIFEST_TYPES = [
    *sorted(INDEX_TYPES),
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
]
PART_BYTES = 20 * 1024 * 1024  # ECR takes layer parts of 5 MiB and more


class ImageCopyFailed(GitopsError):
    """The app image could not be copied into the target stage's repository, or its digest did not match."""

    hint = "check the source image exists in the source stage's repository and the promote role may write the target's"


@dataclass
class CarriedImage:
    stage: str
    image: str  # <target repository>@sha256:...
    copied: bool  # False: the target held the digest already
    blobs_copied: int = 0
    not_checked: list[str] = field(default_factory=list)


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _has_image(ecr: Any, repository: str, digest: str) -> bool:
    try:
        found = ecr.describe_images(repositoryName=repository, imageIds=[{"imageDigest": digest}])["imageDetails"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ImageNotFoundException":
            return False
        raise
    return any(detail.get("imageDigest") == digest for detail in found)


def _manifest(ecr: Any, repository: str, digest: str) -> tuple[bytes, str]:
    images = ecr.batch_get_image(
        repositoryName=repository, imageIds=[{"imageDigest": digest}], acceptedMediaTypes=MANIFEST_TYPES
    )["images"]
    if not images:
        raise ImageCopyFailed(f"{repository}@{digest}: not in the source stage's repository")
    body = images[0]["imageManifest"].encode()
    if _sha256(body) != digest:
        raise ImageCopyFailed(f"{repository}@{digest}: the registry returned a manifest of {_sha256(body)}")
    return body, images[0].get("imageManifestMediaType") or json.loads(body).get("mediaType", "")


def _download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=300) as response:  # noqa: S310 (an ECR-issued https URL)
        return response.read()


def copy_image(
    source_ecr: Any,
    source_repository: str,
    dest_ecr: Any,
    dest_repository: str,
    digest: str,
    *,
    tag: str,
    download: Callable[[str], bytes] = _download,
) -> int:
    """Copy digest (manifest, child manifests, blobs) between repositories; the number of blobs written."""
    written = 0

    def copy_blobs(digests: list[str]) -> None:
        nonlocal written
        if not digests:
            return
        found = dest_ecr.batch_check_layer_availability(repositoryName=dest_repository, layerDigests=digests)
        present = {
            layer["layerDigest"] for layer in found.get("layers", []) if layer.get("layerAvailability") == "AVAILABLE"
        }
        for blob in [d for d in digests if d not in present]:
            url = source_ecr.get_download_url_for_layer(repositoryName=source_repository, layerDigest=blob)[
                "downloadUrl"
            ]
            data = download(url)
            if _sha256(data) != blob:
                raise ImageCopyFailed(f"{source_repository}: blob {blob} downloaded as {_sha256(data)}")
            upload_id = dest_ecr.initiate_layer_upload(repositoryName=dest_repository)["uploadId"]
            for first in range(0, len(data), PART_BYTES):
                part = data[first : first + PART_BYTES]
                dest_ecr.upload_layer_part(
                    repositoryName=dest_repository,
                    uploadId=upload_id,
                    partFirstByte=first,
                    partLastByte=first + len(part) - 1,
                    layerPartBlob=part,
                )
            dest_ecr.complete_layer_upload(repositoryName=dest_repository, uploadId=upload_id, layerDigests=[blob])
            written += 1

    def copy_manifest(manifest_digest: str, tagged: bool) -> None:
        body, media_type = _manifest(source_ecr, source_repository, manifest_digest)
        document = json.loads(body)
        if media_type in INDEX_TYPES:
            for child in document.get("manifests", []):
                copy_manifest(child["digest"], tagged=False)
        else:
            copy_blobs([document["config"]["digest"], *(layer["digest"] for layer in document.get("layers", []))])
        extra = {"imageTag": tag} if tagged else {}
        try:
            dest_ecr.put_image(
                repositoryName=dest_repository,
                imageManifest=body.decode(),
                imageManifestMediaType=media_type,
                imageDigest=manifest_digest,
                **extra,
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ImageAlreadyExistsException":
                raise

    copy_manifest(digest, tagged=True)
    return written


def carry_image(release_dir: Path, source: StageConfig, dest: StageConfig, target: Target) -> CarriedImage | None:
    """Before the target's env repo moves: its repository holds the release's digest (copied if need be), checked."""
    if not (release_dir / RELEASE_APP).is_file():
        return None  # a release rendered before the app existed carries no image
    image = read_release_app(release_dir)
    if image is None:
        return None
    source_ecr = target.client(source, "ecr")
    dest_ecr = target.client(dest, "ecr", target.promotion_session(dest, "promote-image"))
    digest, dest_repo = image.digest, dest.app_repository_name
    try:
        if _has_image(dest_ecr, dest_repo, digest):
            return CarriedImage(dest.stage, image.in_stage(dest), copied=False)
        if not _has_image(source_ecr, source.app_repository_name, digest):
            raise ImageCopyFailed(f"{source.app_repository_name}@{digest}: not in {source.stage}'s repository")
        tag = f"sha256-{digest.removeprefix('sha256:')[:16]}"
        not_checked = []
        if target.is_local:
            # moto keeps manifests, not blobs: copy the manifest, checked by its sha256; say what was not.
            body, media_type = _manifest(source_ecr, source.app_repository_name, digest)
            dest_ecr.put_image(
                repositoryName=dest_repo,
                imageManifest=body.decode(),
                imageManifestMediaType=media_type,
                imageDigest=digest,
                imageTag=tag,
            )
            blobs = 0
            not_checked.append("image layers: the embedded target's ECR keeps no blobs (the manifest was copied)")
        else:
            blobs = copy_image(source_ecr, source.app_repository_name, dest_ecr, dest_repo, digest, tag=tag)
        if not _has_image(dest_ecr, dest_repo, digest):
            raise ImageCopyFailed(f"{dest_repo}@{digest}: still not in {dest.stage}'s repository after the copy")
    except ClientError as exc:
        raise ImageCopyFailed(f"copying the app image {digest} to {dest.stage}'s {dest_repo}: {exc}") from exc
    return CarriedImage(dest.stage, image.in_stage(dest), copied=True, blobs_copied=blobs, not_checked=not_checked)
