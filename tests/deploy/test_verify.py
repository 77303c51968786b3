"""Verify against a loopback moto server: a fresh deploy verifies; out-of-band drift is named precisely."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_deploy import (
    BUCKET,
    STEP_CODE,
    STEP_PATH,
    OtherAccountTarget,
    clients,
    make_release,
    pipeline_definition,
)

from gitops.deploy.apply import deploy_stage
from gitops.deploy.verify import VerificationFailed, verify_stage
from gitops.errors import DeployError, GitopsError
from gitops.release.pipelines import canonical_json
from gitops.target import Target


@pytest.fixture
def deployed(tmp_path: Path, target: Target) -> Path:
    release = make_release(tmp_path / "release")
    report = deploy_stage(release, "dev", target)
    assert report.ok, report.error
    return release


def test_verify_passes_after_deploy(deployed: Path, target: Target):
    report = verify_stage(deployed, "dev", target)
    assert report.ok, report.problems
    report.raise_for_failure()
    kinds = sorted({c.kind for c in report.checks})
    # bucket and kms-key: the live resources read back through their own APIs (deploy/live.py).
    assert kinds == [
        "asset",
        "bucket",
        "kms-key",
        "model",
        "model-package-group",
        "not-checked",
        "pipeline",
        "stack",
        "template",
    ]
    bucket = next(c for c in report.checks if c.kind == "bucket")
    assert bucket.name == "mlops-dev-mlops/ArtifactBucket" and "public access block and encryption" in bucket.detail
    # What the embedded projection left out is listed as not checked here, never counted as passed.
    not_checked = {c.name: c.detail for c in report.checks if c.kind == "not-checked"}
    assert all(c.skipped for c in report.checks if c.kind == "not-checked")
    assert not_checked["mlops-dev-mlops/ModelPackageGroup"].startswith("AWS::SageMaker::ModelPackageGroup: type not")
    # The release pins no model: the Inference stack serves none (its parameters are empty), and no call is made.
    model = next(c for c in report.checks if c.kind == "model")
    assert (model.name, model.ok, model.detail) == ("mlops-dev-inference/endpoint", True, "none pinned, none served")
    assert not any(c.kind == "prediction" for c in report.checks)
    json.dumps(report.to_dict())


def test_verify_names_a_pipeline_changed_out_of_band(deployed: Path, target: Target):
    sm = clients(target)["sagemaker"]
    sm.update_pipeline(PipelineName="mlops-dev-training", PipelineDefinition=json.dumps(pipeline_definition("hotfix")))
    report = verify_stage(deployed, "dev", target)
    assert not report.ok
    expected = pipeline_definition()
    release_hash = __import__("hashlib").sha256(canonical_json(expected)).hexdigest()
    drifted = __import__("hashlib").sha256(canonical_json(pipeline_definition("hotfix"))).hexdigest()
    assert report.problems == [
        f"pipeline mlops-dev-training: definition sha256 {drifted[:12]} != release {release_hash[:12]}"
    ]
    with pytest.raises(VerificationFailed) as err:
        report.raise_for_failure()
    assert "\n" not in str(err.value)
    assert str(err.value).startswith(f"stage 'dev' does not match release {report.release_id[:12]}: pipeline")
    # A re-deploy converges, and verify agrees.
    assert [p.action for p in deploy_stage(deployed, "dev", target).pipelines] == ["updated"]
    assert verify_stage(deployed, "dev", target).ok


def test_the_verify_verb_prints_each_check_once(deployed: Path, target: Target):
    sm = clients(target)["sagemaker"]
    sm.update_pipeline(PipelineName="mlops-dev-training", PipelineDefinition=json.dumps(pipeline_definition("hotfix")))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITOPS_")}
    env.update(GITOPS_TARGET="local", GITOPS_LOCAL_DIR=str(target.local_dir), COLUMNS="300")
    done = subprocess.run(
        [sys.executable, "-m", "gitops", "verify", "--stage", "dev", "--release", str(deployed)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    rows = [line for line in done.stdout.splitlines() if "│" in line]
    assert sum("mlops-dev-training" in row and "DIFFERS" in row for row in rows) == 1, done.stdout
    assert sum("CREATE_COMPLETE" in row for row in rows) == 3, done.stdout  # one row per stack, not two
    # stderr: what is being read per stack, then the one error line; the difference is not narrated again.
    assert sum("definition sha256" in line for line in done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.splitlines()[-1].startswith(("error: stage 'dev' does not match", "hint:")), done.stderr


def test_verify_names_a_deleted_stack(deployed: Path, target: Target):
    clients(target)["cloudformation"].delete_stack(StackName="mlops-dev-inference")
    report = verify_stage(deployed, "dev", target)
    assert report.problems == ["stack mlops-dev-inference: does not exist"]


def test_verify_names_a_changed_template_and_a_missing_asset(deployed: Path, target: Target):
    aws = clients(target)
    cfn = aws["cloudformation"]
    template = cfn.get_template(StackName="mlops-dev-base")["TemplateBody"]
    template["Resources"]["KeyArnParam"]["Properties"]["Description"] = "edited in the console"
    cfn.update_stack(StackName="mlops-dev-base", TemplateBody=json.dumps(template))
    aws["s3"].delete_object(Bucket=BUCKET, Key=STEP_PATH)
    problems = verify_stage(deployed, "dev", target).problems
    assert problems[0] == (
        "template mlops-dev-base: deployed template differs from the release's embedded projection"
        " (resources KeyArnParam)"
    )
    assert problems[1].startswith(f"asset s3://{BUCKET}/{STEP_PATH}: missing")
    assert len(problems) == 2


def test_a_public_access_block_removed_out_of_band_is_named_and_deploy_puts_it_back(deployed: Path, target: Target):
    """The templates stay equal, so only reading the bucket itself shows what changed."""
    s3 = clients(target)["s3"]
    s3.delete_public_access_block(Bucket=BUCKET)
    problems = verify_stage(deployed, "dev", target).problems
    assert len(problems) == 1 and problems[0].startswith("bucket mlops-dev-mlops/ArtifactBucket: "), problems
    assert "public access block" in problems[0]
    report = deploy_stage(deployed, "dev", target)
    assert report.ok, report.error
    mlops = next(s for s in report.stacks if s.name == "MLOps")
    assert mlops.action == "unchanged" and len(mlops.repaired) == 1, mlops
    assert s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"]["BlockPublicPolicy"]
    assert verify_stage(deployed, "dev", target).ok


def test_step_code_replaced_under_its_label_is_found_by_its_bytes_and_re_uploaded(deployed: Path, target: Target):
    """Metadata is a label anyone can copy; the checksum S3 computes from the bytes is not."""
    s3 = clients(target)["s3"]
    label = s3.head_object(Bucket=BUCKET, Key=STEP_PATH).get("Metadata", {})
    s3.put_object(Bucket=BUCKET, Key=STEP_PATH, Body=b"print('exfiltrate')\n", Metadata=label)
    problems = verify_stage(deployed, "dev", target).problems
    assert len(problems) == 1 and problems[0].startswith(f"asset s3://{BUCKET}/{STEP_PATH}: sha256 "), problems
    assert "hashed from its bytes" in problems[0]  # the replacement carries no S3 checksum
    report = deploy_stage(deployed, "dev", target)
    assert f"s3://{BUCKET}/{STEP_PATH}" in report.assets_uploaded
    assert s3.get_object(Bucket=BUCKET, Key=STEP_PATH)["Body"].read() == STEP_CODE
    assert verify_stage(deployed, "dev", target).ok


def test_verify_before_any_deploy_lists_everything_missing(tmp_path: Path, target: Target):
    report = verify_stage(make_release(tmp_path / "r"), "dev", target)
    assert not report.ok
    assert "stack mlops-dev-base: does not exist" in report.problems
    assert "pipeline mlops-dev-training: does not exist" in report.problems
    assert any(
        p.startswith("model-package-group mlops-dev-models: ") and "does not exist" in p for p in report.problems
    )
    assert any(p.startswith(f"asset s3://{BUCKET}/{STEP_PATH}: missing") for p in report.problems)


def test_verify_refuses_credentials_of_another_account(deployed: Path, target: Target):
    wrong = OtherAccountTarget("local", target.local_dir, target.endpoint_url)
    with pytest.raises(DeployError, match="refusing to verify stage 'dev' \\(account 111111111111\\)"):
        verify_stage(deployed, "dev", wrong)


def test_verification_failed_is_a_gitops_error():
    assert issubclass(VerificationFailed, GitopsError)
