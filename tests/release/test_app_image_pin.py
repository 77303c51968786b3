"""The app image pin (app/image.yaml): by digest only, from a stage's app repository, carried as app.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitops.config import load_stages
from gitops.errors import ReleaseError
from gitops.release.app_image import (
    NO_IMAGE_NOTE,
    AppImageError,
    load_pin,
    read_release_app,
    release_app_bytes,
)

ROOT = Path(__file__).resolve().parents[2]
STAGES = load_stages(ROOT)
DIGEST = "sha256:" + "ab" * 32
DEV_IMAGE = f"111111111111.dkr.ecr.eu-west-1.amazonaws.com/mlops-dev-app@{DIGEST}"


def _pin(tmp_path: Path, text: str) -> Path:
    (tmp_path / "app").mkdir(exist_ok=True)
    (tmp_path / "app" / "image.yaml").write_text(text)
    return tmp_path


def test_the_shipped_pin_is_valid_and_says_no_app_yet_explicitly():
    image = load_pin(ROOT, STAGES)
    body = json.loads(release_app_bytes(image))
    if image is None:
        assert body == {"image": None, "note": NO_IMAGE_NOTE}
    else:
        assert body["digest"] == image.digest


def test_a_pinned_digest_runs_in_each_stage_from_that_stage_repository(tmp_path: Path):
    image = load_pin(_pin(tmp_path, f"image: {DEV_IMAGE}\n"), STAGES)
    assert image is not None and image.digest == DIGEST
    assert image.in_stage(STAGES["prod"]) == f"222222222222.dkr.ecr.eu-west-1.amazonaws.com/mlops-prod-app@{DIGEST}"
    release = tmp_path / "release"
    release.mkdir()
    (release / "app.json").write_bytes(release_app_bytes(image))
    assert read_release_app(release) == image


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "image: 111111111111.dkr.ecr.eu-west-1.amazonaws.com/mlops-dev-app:latest\n",
            "mlops-dev-app:latest' is not pinned by digest",
        ),
        (
            "image: 111111111111.dkr.ecr.eu-west-1.amazonaws.com/mlops-dev-app@sha256:abc\n",
            "is not an ECR image reference by digest",
        ),
        (
            f"image: 333333333333.dkr.ecr.eu-west-1.amazonaws.com/mlops-dev-app@{DIGEST}\n",
            "333333333333/eu-west-1/mlops-dev-app is no stage's app repository",
        ),
        (f"image: docker.io/library/python@{DIGEST}\n", "is not an ECR image reference by digest"),
        ("image: 42\n", "field 'image' must be a string or null, got int"),
        ("digest: x\n", "expected exactly one field 'image', got ['digest']"),
        ("image: [\n", "not valid YAML"),
    ],
)
def test_a_bad_pin_is_refused_in_one_line_naming_the_file(tmp_path: Path, text: str, expected: str):
    with pytest.raises(AppImageError) as info:
        load_pin(_pin(tmp_path, text), STAGES)
    message = str(info.value)
    assert message.startswith("app/image.yaml"), message
    assert expected in message and "\n" not in message and len(message) < 260, message


def test_a_missing_pin_is_refused_rather_than_read_as_no_app(tmp_path: Path):
    with pytest.raises(AppImageError, match=r"app/image\.yaml: not found \(write image: null"):
        load_pin(tmp_path, STAGES)


def test_a_release_app_json_edited_to_a_tag_is_refused(tmp_path: Path):
    (tmp_path / "app.json").write_text(json.dumps({"image": DEV_IMAGE.replace(f"@{DIGEST}", ":v2"), "digest": DIGEST}))
    with pytest.raises(AppImageError, match="is not pinned by digest"):
        read_release_app(tmp_path)
    (tmp_path / "app.json").write_text(json.dumps({"image": DEV_IMAGE, "digest": "sha256:" + "cd" * 32}))
    with pytest.raises(ReleaseError, match="is not the image's"):
        read_release_app(tmp_path)


def test_pin_image_writes_the_pin_keeping_its_comments_and_refuses_a_tag(tmp_path: Path):
    import shutil
    import subprocess
    import sys

    shutil.copytree(ROOT / "infra" / "config", tmp_path / "infra" / "config")
    _pin(tmp_path, "# reviewed pin\nimage: null\n")
    gitops = [sys.executable, "-m", "gitops"]
    done = subprocess.run(
        [*gitops, "pin-image", "--image", DEV_IMAGE, "--root", str(tmp_path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "app" / "image.yaml").read_text() == f"# reviewed pin\nimage: {DEV_IMAGE}\n"
    assert load_pin(tmp_path, STAGES).digest == DIGEST  # type: ignore[union-attr]
    tagged = DEV_IMAGE.replace(f"@{DIGEST}", ":latest")
    refused = subprocess.run(
        [*gitops, "pin-image", "--image", tagged, "--root", str(tmp_path)], capture_output=True, text=True
    )
    assert refused.returncode != 0 and "is not pinned by digest" in refused.stderr
    assert (tmp_path / "app" / "image.yaml").read_text() == f"# reviewed pin\nimage: {DEV_IMAGE}\n"  # unchanged


def test_the_digest_is_read_from_the_stage_registry_by_tag():
    import boto3
    from botocore.stub import Stubber

    from gitops.release.app_image import registry_image

    ecr = boto3.client("ecr", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(ecr) as stub:
        stub.add_response(
            "describe_images",
            {"imageDetails": [{"imageDigest": DIGEST, "imageTags": ["abc123"]}]},
            {"repositoryName": "mlops-dev-app", "imageIds": [{"imageTag": "abc123"}]},
        )
        assert registry_image(STAGES["dev"], "abc123", ecr) == DEV_IMAGE
        stub.add_client_error("describe_images", "ImageNotFoundException", "no such tag")
        with pytest.raises(AppImageError, match="mlops-dev-app:nope: cannot read it from dev's registry"):
            registry_image(STAGES["dev"], "nope", ecr)
