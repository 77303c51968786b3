"""Promotion carries the app image on the embedded target (moto ECR): digest checked, layers said not checked."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from gitops.config import load_stages
from gitops.promotion.app_image import ImageCopyFailed, carry_image
from gitops.release.app_image import parse_image, release_app_bytes
from gitops.target import Target

ROOT = Path(__file__).resolve().parents[2]
STAGES = load_stages(ROOT)
DEV, PROD = STAGES["dev"], STAGES["prod"]
MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "digest": "sha256:" + "1" * 64,
            "size": 1,
        },
        "layers": [],
    }
)
DIGEST = "sha256:" + hashlib.sha256(MANIFEST.encode()).hexdigest()


def _release(tmp_path: Path) -> Path:
    image = parse_image(f"{DEV.account}.dkr.ecr.{DEV.region}.amazonaws.com/{DEV.app_repository_name}@{DIGEST}", "pin")
    (tmp_path / "app.json").write_bytes(release_app_bytes(image))
    return tmp_path


def test_promotion_puts_the_digest_into_prods_own_repository_once(tmp_path: Path, target: Target):
    dev_ecr, prod_ecr = target.client(DEV, "ecr"), target.client(PROD, "ecr")
    dev_ecr.create_repository(repositoryName=DEV.app_repository_name)
    prod_ecr.create_repository(repositoryName=PROD.app_repository_name)
    # moto derives a digest from the layer list unless told: CI's push sends the real one, as here.
    dev_ecr.put_image(
        repositoryName=DEV.app_repository_name, imageManifest=MANIFEST, imageTag="abc123", imageDigest=DIGEST
    )
    release = _release(tmp_path)

    carried = carry_image(release, DEV, PROD, target)
    assert carried is not None and carried.copied
    assert carried.image == f"{PROD.account}.dkr.ecr.{PROD.region}.amazonaws.com/{PROD.app_repository_name}@{DIGEST}"
    assert carried.not_checked and "layers" in carried.not_checked[0]
    found = prod_ecr.describe_images(repositoryName=PROD.app_repository_name)["imageDetails"]
    assert [d["imageDigest"] for d in found] == [DIGEST]

    again = carry_image(release, DEV, PROD, target)
    assert again is not None and not again.copied  # already there: checked, not copied twice


def test_an_image_missing_from_dev_stops_the_promotion(tmp_path: Path, target: Target):
    target.client(DEV, "ecr").create_repository(repositoryName=DEV.app_repository_name)
    target.client(PROD, "ecr").create_repository(repositoryName=PROD.app_repository_name)
    with pytest.raises(ImageCopyFailed, match=f"mlops-dev-app@{DIGEST}: not in dev's repository"):
        carry_image(_release(tmp_path), DEV, PROD, target)
    assert target.client(PROD, "ecr").describe_images(repositoryName=PROD.app_repository_name)["imageDetails"] == []


def test_a_release_with_no_app_image_carries_nothing(tmp_path: Path, target: Target):
    (tmp_path / "app.json").write_bytes(release_app_bytes(None))
    assert carry_image(tmp_path, DEV, PROD, target) is None


def test_a_dev_manifest_that_does_not_hash_to_the_pin_is_refused(tmp_path: Path, target: Target):
    """moto stores whatever digest it is told: the copy hashes the manifest itself."""
    dev_ecr = target.client(DEV, "ecr")
    dev_ecr.create_repository(repositoryName=DEV.app_repository_name)
    target.client(PROD, "ecr").create_repository(repositoryName=PROD.app_repository_name)
    dev_ecr.put_image(
        repositoryName=DEV.app_repository_name, imageManifest=MANIFEST.replace("[]", "[ ]"), imageDigest=DIGEST
    )
    with pytest.raises(ImageCopyFailed, match="the registry returned a manifest of sha256:"):
        carry_image(_release(tmp_path), DEV, PROD, target)
