"""The app image pin: app/image.yaml (reviewed, by digest) validated at render and carried as app.json.

Deploy runs `<the stage's app repository>@<digest>`; promote copies the digest into the next
stage's repository first. An empty pin (`image: null`) says, explicitly, that there is no app yet.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops.config import StageConfig
from gitops.errors import GitopsError, ReleaseError
from gitops.files import atomic_write
from gitops.strict_yaml import YamlError, load_yaml

PIN_FILE = Path("app") / "image.yaml"
RELEASE_APP = "app.json"
NO_IMAGE_NOTE = "no app image pinned (app/image.yaml image: null): the App stack runs no service"
_IMAGE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com"
    r"/(?P<repository>[a-z0-9][a-z0-9._/-]*)@(?P<digest>sha256:[a-f0-9]{64})$"
)
DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")


class AppImageError(GitopsError):
    """The app image pin is missing, malformed, not by digest, or from no stage's repository."""

    hint = (
        "pin the image as <account>.dkr.ecr.<region>.amazonaws.com/<project>-<stage>-app@sha256:<64 hex>"
        " (the digest CI printed), or image: null for no app yet"
    )


@dataclass(frozen=True)
class AppImage:
    """The pinned image: where it was built and pushed, and its digest (the part every stage runs)."""

    image: str
    account: str
    region: str
    repository: str
    digest: str

    def in_stage(self, cfg: StageConfig) -> str:
        """The same digest in a stage's own repository: what that stage's service runs."""
        return f"{cfg.account}.dkr.ecr.{cfg.region}.amazonaws.com/{cfg.app_repository_name}@{self.digest}"


def parse_image(value: object, shown: str, stages: dict[str, StageConfig] | None = None) -> AppImage | None:
    """A pinned image reference, checked: by digest and, given the stages, in one of their app repositories."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise AppImageError(f"{shown}: field 'image' must be a string or null, got {type(value).__name__}")
    match = _IMAGE.match(value)
    if not match:
        if "@sha256:" not in value:
            raise AppImageError(f"{shown}: field 'image': {value[:120]!r} is not pinned by digest (@sha256:...)")
        raise AppImageError(f"{shown}: field 'image': {value[:120]!r} is not an ECR image reference by digest")
    image = AppImage(value, match["account"], match["region"], match["repository"], match["digest"])
    if stages is not None and not any(
        (cfg.account, cfg.region, cfg.app_repository_name) == (image.account, image.region, image.repository)
        for cfg in stages.values()
    ):
        known = ", ".join(f"{c.account}/{c.region}/{c.app_repository_name}" for c in stages.values())
        raise AppImageError(
            f"{shown}: field 'image': {image.account}/{image.region}/{image.repository} is no stage's app repository"
            f" ({known})"
        )
    return image


def load_pin(root: Path, stages: dict[str, StageConfig]) -> AppImage | None:
    """app/image.yaml, validated; a missing file is refused (say `image: null` for no app)."""
    path = root / PIN_FILE
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"), str(PIN_FILE))
    except FileNotFoundError as exc:
        raise AppImageError(f"{PIN_FILE}: not found (write image: null when there is no app image yet)") from exc
    except YamlError as exc:
        raise AppImageError(str(exc)) from exc
    if not isinstance(raw, dict) or set(raw) != {"image"}:
        got = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        raise AppImageError(f"{PIN_FILE}: expected exactly one field 'image', got {got}")
    return parse_image(raw["image"], str(PIN_FILE), stages)


def release_app_bytes(image: AppImage | None) -> bytes:
    """app.json: the pin as the release carries it (canonical JSON)."""
    body: dict[str, object]
    if image is None:
        body = {"image": None, "note": NO_IMAGE_NOTE}
    else:
        body = {
            "image": image.image,
            "digest": image.digest,
            "built_in": {"account": image.account, "region": image.region, "repository": image.repository},
        }
    return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode()


def read_release_app(release_dir: Path) -> AppImage | None:
    """The release's app.json, its reference re-checked (a digest, nothing else, reaches a stage)."""
    path = release_dir / RELEASE_APP
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ReleaseError(f"{path}: missing (a release carries app.json; re-run `gitops render`)") from exc
    except json.JSONDecodeError as exc:
        raise ReleaseError(f"{path}: not valid JSON ({exc.msg})") from exc
    if not isinstance(body, dict) or "image" not in body:
        raise ReleaseError(f"{path}: no 'image' field")
    image = parse_image(body["image"], str(path))
    if image is not None and body.get("digest") != image.digest:
        raise ReleaseError(f"{path}: 'digest' {body.get('digest')!r} is not the image's {image.digest}")
    return image


def write_pin(root: Path, reference: str, stages: dict[str, StageConfig]) -> tuple[AppImage | None, AppImage]:
    """Pin reference in app/image.yaml (checked as render checks it); the previous and the new pin."""
    image = parse_image(reference, "--image", stages)
    assert image is not None  # a str was given
    path = root / PIN_FILE
    previous = load_pin(root, stages) if path.exists() else None
    text = path.read_text(encoding="utf-8") if path.exists() else "image: null\n"
    header = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    atomic_write(path, f"{header}image: {image.image}\n")
    return previous, image


def registry_image(cfg: StageConfig, tag: str, ecr: Any = None) -> str:
    """The stage's app repository @ the digest ECR holds for tag: read from the registry, not from a build log."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    client = ecr or boto3.Session(region_name=cfg.region).client("ecr")
    try:
        found = client.describe_images(repositoryName=cfg.app_repository_name, imageIds=[{"imageTag": tag}])
    except (BotoCoreError, ClientError) as exc:
        raise AppImageError(
            f"{cfg.app_repository_name}:{tag}: cannot read it from {cfg.stage}'s registry: {exc}"
        ) from exc
    digest = found["imageDetails"][0]["imageDigest"]
    return f"{cfg.account}.dkr.ecr.{cfg.region}.amazonaws.com/{cfg.app_repository_name}@{digest}"
