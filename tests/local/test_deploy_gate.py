"""The gate runs where the deploy runs: buildspecs/deploy.yml, run as CodeBuild would, scans first.

The real buildspec runs through the local buildspec runner in a fresh build image (the rehearsal's
virtualenv), on an env-repository checkout whose release carries the real engine wheel and its
hash-locked requirements. A release whose scan fails stops the build before `gitops deploy`; a
clean one reaches it, and deploy accepts the scan its own build just attested.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitops.config import load_stages
from gitops.local.buildspec_runner import BuildResult, run_buildspec
from gitops.local.rehearsal import BuildImage
from gitops.model.pin import RELEASE_MODEL, ModelPin, release_model_bytes
from gitops.release.app_image import RELEASE_APP, release_app_bytes
from gitops.release.buildspec import load_buildspec
from gitops.release.manifest import StackSummary, StageSummary, seal_manifest, stage_config_path, write_release_dir
from gitops.release.pipelines import canonical_json
from gitops.release.render import _render_engine_wheel, _render_requirements

pytestmark = pytest.mark.slow  # a fresh build image, a hash-locked install and a real scan per build

ROOT = Path(__file__).resolve().parents[2]
DEV = load_stages(ROOT)["dev"]
OPEN_BUCKET = {"Resources": {"OpenBucket": {"Type": "AWS::S3::Bucket", "Properties": {}}}}
CLEAN = {"Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}}}


@pytest.fixture(scope="module")
def engine_files() -> tuple[dict[str, bytes], str, dict[str, str]]:
    """The engine wheel and its requirement files, as render puts them in every release."""
    wheel, requirements = _render_engine_wheel(ROOT), _render_requirements(ROOT)
    return {**wheel.files, **requirements.files}, wheel.summary["engine_wheel"], requirements.summary["requirements"]


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> BuildImage:
    return BuildImage(tmp_path_factory.mktemp("image") / "venv")


def env_repo_checkout(path: Path, template: dict, engine_files) -> Path:
    """What the Deploy action's source artifact holds: the stage marker and release/."""
    files, wheel, requirements = engine_files
    path.mkdir(parents=True)
    (path / "STAGE").write_text("dev\n")
    release = {
        **files,
        stage_config_path("dev"): canonical_json(DEV.model_dump(mode="json")),
        "stages/dev/templates/Base.template.json": canonical_json(template),
        "stages/dev/templates/Base.assets.json": canonical_json({"stack_name": "mlops-dev-base", "files": []}),
        "stages/dev/cdk-nag.json": canonical_json({"pack": "AwsSolutions", "cdk_nag": "3.0.2", "stacks": {}}),
        # The pins every release carries, here empty: no model served, no app image.
        RELEASE_MODEL: release_model_bytes(ModelPin(model=None), None),
        RELEASE_APP: release_app_bytes(None),
    }
    stack = StackSummary(stack_name="mlops-dev-base", resources=len(template["Resources"]), resource_types={})
    summary = StageSummary(
        account=DEV.account, region=DEV.region, promote_to=None, pipelines={}, stacks={"Base": stack}
    )
    manifest = seal_manifest(release, engine_wheel=wheel, requirements=requirements, stages={"dev": summary})
    write_release_dir(path / "release", release, manifest)
    return path


def run_deploy_build(workdir: Path, image: BuildImage, lines: list[str]) -> BuildResult:
    spec = load_buildspec(ROOT / "buildspecs" / "deploy.yml")
    unreachable_aws = {
        **dict.fromkeys(("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"), "placeholder-never-sent"),
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    return run_buildspec(
        spec,
        workdir,
        {"STAGE": "dev", "GITOPS_TARGET": "aws", "COLUMNS": "200", **unreachable_aws},
        base_env=image.env(),
        log=lines.append,
        output_dir=workdir.parent / f"{workdir.name}-out",
        timeout_seconds=900,
    )


def test_a_release_whose_scan_fails_stops_the_deploy_build_before_deploy(tmp_path, engine_files, image):
    workdir = env_repo_checkout(tmp_path / "checkout", OPEN_BUCKET, engine_files)
    lines: list[str] = []
    result = run_deploy_build(workdir, image, lines)
    log = "\n".join(lines)
    assert result.phase("install").status == "SUCCEEDED", log  # the hash-locked install took
    assert result.failed_phase == "PRE_BUILD", log
    assert "gitops scan" in result.message
    assert result.phase("build") is None  # `gitops deploy` never ran
    assert "Running command gitops deploy" not in log
    assert "scan failed" in log and "CKV_AWS_18" in log


def test_a_clean_release_is_scanned_then_deployed_on_its_own_builds_attestation(tmp_path, engine_files, image):
    workdir = env_repo_checkout(tmp_path / "checkout", CLEAN, engine_files)
    lines: list[str] = []
    result = run_deploy_build(workdir, image, lines)
    log = "\n".join(lines)
    assert result.phase("pre_build").status == "SUCCEEDED", log
    build = [line for line in lines if "[BUILD]" in line]
    assert any("Running command gitops deploy" in line for line in build), log
    release_id = json.loads((workdir / "release" / "manifest.json").read_text())["release_id"]
    assert any(f"gate: release {release_id[:12]} passed its policy scan (release scan" in line for line in build), log
    assert not any("scanning it now" in line for line in build)  # it reused the pre_build scan's attestation
    # What stops it then is the unreachable AWS endpoint, not the gate.
    assert result.failed_phase == "BUILD" and "127.0.0.1:9" in log, "\n".join(build)
