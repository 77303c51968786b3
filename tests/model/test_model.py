"""The model pin, `gitops model propose` and verify's call of the model, on the embedded target and Stubber.

One module-scoped moto server and one sample model (the pipeline's own step code on the sample,
as the rehearsal builds it until the local executor lands).
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from gitops.config import load_stages
from gitops.errors import ERROR_LINE_LIMIT
from gitops.local.embedded import start_server, stop_server
from gitops.local.sample_model import (
    TrainedModel,
    approve_package,
    register_model,
    stand_in_image,
    train_sample_model,
)
from gitops.model.artifact import ArtifactMissing, ensure_stage_artifact
from gitops.model.change import model_change
from gitops.model.invoke import call_endpoint, check_predictions, run_locally
from gitops.model.pin import PIN_PATH, ModelPin, ModelPinError, load_pin, release_model_bytes, sample_request
from gitops.model.promotion import carry_model
from gitops.model.propose import ProposeError, event_decision, propose_model
from gitops.target import Target

ROOT = Path(__file__).resolve().parents[2]
FEATURES = ("tenure_months", "monthly_charges", "total_charges", "support_calls", "contract_months", "has_internet")
SAMPLE = sample_request(ROOT / "pipeline_defs/feature_ingestion/sample/customers.csv", FEATURES)
GOOD_ARN = "arn:aws:sagemaker:eu-west-1:111111111111:model-package/mlops-dev-models/3"
GOOD_PIN = f"""model:
  package_arn: {GOOD_ARN}
  artifact:
    uri: s3://mlops-dev-artifacts-111111111111-eu-west-1/training/x/model.tar.gz
    sha256: {"a" * 64}
  image: 141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn@sha256:{"b" * 64}
  metrics:
    auc: 0.91
"""

# ---------------------------------------------------------------- the pin file


def write_pin(root: Path, text: str) -> Path:
    (root / PIN_PATH).parent.mkdir(parents=True, exist_ok=True)
    (root / PIN_PATH).write_text(text)
    return root


def test_the_repository_pins_no_model_yet_and_says_so():
    assert load_pin(ROOT).model is None
    assert "model: null" in (ROOT / PIN_PATH).read_text()


def test_a_valid_pin_loads_with_its_model(tmp_path: Path):
    pin = load_pin(write_pin(tmp_path, GOOD_PIN))
    assert pin.model is not None and pin.model.group == "mlops-dev-models" and pin.model.version == 3
    assert pin.describe() == f"mlops-dev-models/3 sha256 {'a' * 12} auc 0.9100"


@pytest.mark.parametrize(
    "change, expected",
    [
        ((GOOD_ARN, "arn:aws:sagemaker:eu-west-1:1111:model-package/x"), "field 'model.package_arn': not a versioned"),
        (("@sha256:" + "b" * 64, ":1.2-1-cpu-py3"), "field 'model.image': must be an ECR image by digest"),
        ("a" * 64, "field 'model.artifact.sha256': must be 64 lower-case hex"),
        (("    auc: 0.91", "    accuracy: 0.91"), "field 'model.metrics': must include 'auc'"),
        (("  metrics:", "  colour: red\n  metrics:"), "unknown field 'model.colour'"),
    ],
)
def test_a_malformed_pin_is_one_line_naming_the_file_and_field(tmp_path: Path, change, expected):
    old, new = change if isinstance(change, tuple) else (change, "A" * 64)
    write_pin(tmp_path, GOOD_PIN.replace(old, new))
    with pytest.raises(ModelPinError) as err:
        load_pin(tmp_path)
    message = str(err.value)
    assert message.startswith("models/serving.yaml: ") and expected in message, message
    assert "\n" not in message and len("error: " + message) < ERROR_LINE_LIMIT


def test_a_missing_pin_is_an_error_not_an_implied_empty_one(tmp_path: Path):
    with pytest.raises(ModelPinError, match="models/serving.yaml: missing; write 'model: null'"):
        load_pin(tmp_path)


# ---------------------------------------------------------------- the model's answer


def test_check_predictions_refuses_malformed_answers():
    good = {"predictions": [{"churn_probability": 0.8, "churned": 1}, {"churn_probability": 0.1, "churned": 0}]}
    assert len(check_predictions(json.dumps(good).encode(), 2)) == 2
    from gitops.model.invoke import MalformedPrediction

    for body, rows, expected in [
        (b"<html>", 2, "not JSON"),
        (b'{"scores": []}', 2, "no 'predictions' list"),
        (json.dumps(good).encode(), 3, "2 predictions for 3 records"),
        (b'{"predictions": [{"churn_probability": 1.7, "churned": 1}]}', 1, "1.7 is not a probability"),
        (b'{"predictions": [{"churn_probability": 0.7, "churned": "yes"}]}', 1, "'yes' is not 0 or 1"),
        (b'{"predictions": [{"churn_probability": 0.7, "churned": 0}]}', 1, "disagrees with probability"),
    ]:
        with pytest.raises(MalformedPrediction, match=expected):
            check_predictions(body, rows)


def _runtime_answering(body: bytes) -> tuple[Any, Stubber]:
    runtime = boto3.client(
        "sagemaker-runtime", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    stubber = Stubber(runtime)
    stubber.add_response(
        "invoke_endpoint",
        {"Body": StreamingBody(io.BytesIO(body), len(body)), "ContentType": "application/json"},
        {
            "EndpointName": "mlops-dev-endpoint",
            "ContentType": "text/csv",
            "Accept": "application/json",
            "Body": SAMPLE.csv(),
        },
    )
    stubber.activate()
    return runtime, stubber


def test_verify_on_aws_fails_on_an_endpoint_returning_a_malformed_prediction():
    """(f) InvokeEndpoint (Stubber, as on AWS): a malformed answer fails the check and says why."""
    runtime, stubber = _runtime_answering(b'{"predictions": [{"churn_probability": "high"}]}')
    checked = call_endpoint(runtime, "mlops-dev-endpoint", SAMPLE, 500)
    stubber.assert_no_pending_responses()
    assert not checked.ok and checked.how == "InvokeEndpoint mlops-dev-endpoint"
    assert checked.detail == "malformed prediction: 1 predictions for 5 records"

    rows = [{"churn_probability": 0.25, "churned": 0}] * 5
    runtime, stubber = _runtime_answering(json.dumps({"predictions": rows}).encode())
    fine = call_endpoint(runtime, "mlops-dev-endpoint", SAMPLE, 500)
    assert (
        fine.ok and fine.detail.startswith("5 predictions (0.250, 0.250, 0.250…) in ") and fine.latency_ms is not None
    )


# ---------------------------------------------------------------- propose, on the embedded target


@pytest.fixture(scope="module")
def trained() -> TrainedModel:
    return train_sample_model(ROOT)


def test_the_sample_model_serves_through_its_own_inference_code(trained: TrainedModel):
    assert trained.metrics["auc"] >= 0.75  # clears prod's threshold
    checked = run_locally(trained.data, SAMPLE, 5000)
    assert checked.ok, checked.detail
    assert checked.how.startswith("local: code/inference.py of the pinned artifact (embedded target")
    assert checked.detail.startswith("5 predictions (")
    broken = run_locally(b"not a tarball", SAMPLE, 5000)
    assert not broken.ok and "does not unpack" in broken.detail


@pytest.fixture(scope="module")
def moto(tmp_path_factory) -> Iterator[Target]:
    local_dir = tmp_path_factory.mktemp("embedded")
    info = start_server(local_dir)
    try:
        yield Target("local", local_dir, info.endpoint_url)
    finally:
        assert stop_server(local_dir)


@pytest.fixture
def source(tmp_path: Path, moto: Target) -> Path:
    """A source checkout (stage configs and an empty pin, committed) and a fresh training stage in moto."""
    request = urllib.request.Request(f"{moto.endpoint_url}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()  # noqa: S310 (loopback)
    root = tmp_path / "src"
    shutil.copytree(ROOT / "infra" / "config", root / "infra" / "config")
    shutil.copytree(ROOT / "models", root / "models")
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"],
    ):
        subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)
    dev = load_stages(root)["dev"]
    s3 = moto.client(dev, "s3")
    s3.create_bucket(Bucket=dev.artifact_bucket_name, CreateBucketConfiguration={"LocationConstraint": dev.region})
    moto.client(dev, "sagemaker").create_model_package_group(ModelPackageGroupName=dev.model_package_group_name)
    return root


def _register(root: Path, moto: Target, trained: TrainedModel, job: str = "job-1") -> str:
    dev = load_stages(root)["dev"]
    return register_model(moto.client(dev, "sagemaker"), moto.client(dev, "s3"), dev, trained, job)


def _event(arn: str, status: str) -> dict:
    return {
        "detail-type": "SageMaker Model Package State Change",
        "source": "aws.sagemaker",
        "detail": {"ModelPackageArn": arn, "ModelApprovalStatus": status},
    }


def _branches(root: Path) -> list[str]:
    out = subprocess.run(
        ["git", "-C", str(root), "branch", "--format=%(refname:short)"], capture_output=True, text=True
    )
    return out.stdout.split()


def test_rejected_and_pending_events_propose_nothing(source: Path, moto: Target, trained: TrainedModel):
    """(d) Only an Approved state change proposes; the others leave the repository as it was."""
    arn = _register(source, moto, trained)
    for status in ("PendingManualApproval", "Rejected"):
        proposal = propose_model(source, moto, event=_event(arn, status))
        assert not proposal.proposed and proposal.reason == f"{arn} is {status}, not Approved: nothing to propose"
    assert event_decision({"detail-type": "Other"})[0] is None
    assert _branches(source) == ["main"]
    # Asked for by ARN, a package that is not Approved is refused in one line.
    with pytest.raises(ProposeError, match=r"is PendingManualApproval, not Approved; nothing proposed"):
        propose_model(source, moto, package_arn=arn)
    assert _branches(source) == ["main"]


def test_an_approved_package_becomes_a_commit_of_the_pin_on_a_branch(source: Path, moto: Target, trained):
    arn = _register(source, moto, trained)
    dev = load_stages(source)["dev"]
    approve_package(moto.client(dev, "sagemaker"), arn)
    before = (source / PIN_PATH).read_text()
    proposal = propose_model(source, moto, event=_event(arn, "Approved"))
    assert proposal.proposed and proposal.branch == f"model/mlops-dev-models-{arn.rsplit('/', 1)[1]}"
    # The working tree and the current branch are untouched: the pin changes only on the proposed branch.
    assert (source / PIN_PATH).read_text() == before and _branches(source) == ["main", proposal.branch]
    shown = subprocess.run(
        ["git", "-C", str(source), "show", f"{proposal.branch}:{PIN_PATH.as_posix()}"], capture_output=True, text=True
    ).stdout
    pinned = load_pin(write_pin(source.parent / "check", shown)).model
    assert pinned is not None and pinned.package_arn == arn and pinned.artifact.sha256 == trained.sha256
    assert pinned.image.endswith("@" + pinned.image.split("@")[1]) and "@sha256:" in pinned.image
    description = proposal.description
    assert f"- AUC: none -> {trained.metrics['auc']:.4f}" in description
    assert "- training job: job-1" in description and "- data read: pipeline_defs/" in description
    changed = subprocess.run(
        ["git", "-C", str(source), "diff", "--name-only", "main", proposal.branch], capture_output=True, text=True
    ).stdout.split()
    assert changed == [PIN_PATH.as_posix()]
    # Proposing the same package again is refused: that PR exists.
    with pytest.raises(ProposeError, match="exists already"):
        propose_model(source, moto, package_arn=arn)


def test_a_package_under_the_threshold_or_with_a_changed_artifact_is_not_proposed(source, moto, trained):
    dev = load_stages(source)["dev"]
    sm, s3 = moto.client(dev, "sagemaker"), moto.client(dev, "s3")
    weak_report = json.loads(trained.evaluation)
    weak_report["binary_classification_metrics"]["auc"]["value"] = 0.72  # passes dev (0.7), not prod (0.75)
    weak = TrainedModel(trained.data, json.dumps(weak_report).encode(), {"auc": 0.72}, trained.data_read)
    arn = register_model(sm, s3, dev, weak, "job-weak")
    approve_package(sm, arn)
    with pytest.raises(ProposeError, match=r"auc 0.7200 is under stage 'prod' threshold 0.75; nothing proposed"):
        propose_model(source, moto, package_arn=arn)

    arn = register_model(sm, s3, dev, trained, "job-2")
    approve_package(sm, arn)
    key = f"{dev.pipeline_name('training')}/job-2/Train/output/model.tar.gz"
    s3.put_object(Bucket=dev.artifact_bucket_name, Key=key, Body=b"swapped after registration")
    with pytest.raises(ProposeError, match=r"has sha256 .*, the package records "):
        propose_model(source, moto)  # the newest Approved: this one
    assert _branches(source) == ["main"]


# ---------------------------------------------------------------- across accounts


def _pin_for(trained: TrainedModel, dev, arn: str = GOOD_ARN.replace("/3", "/1")) -> ModelPin:
    tag, digest = stand_in_image(dev.region)
    return ModelPin.model_validate(
        {
            "model": {
                "package_arn": arn,
                "artifact": {
                    "uri": f"s3://{dev.artifact_bucket_name}/{dev.pipeline_name('training')}/job-1/Train/output/model.tar.gz",
                    "sha256": trained.sha256,
                },
                "image": f"{tag.rsplit(':', 1)[0]}@{digest}",
                "metrics": trained.metrics,
            }
        }
    )


def test_prod_serves_the_pinned_bytes_from_its_own_account_whatever_happens_to_dev(source, moto, trained, tmp_path):
    """(c) Promotion copies the pinned artifact into prod (sha256 checked) and registers it there as Approved;
    afterwards a changed or deleted dev artifact cannot change what prod serves."""
    stages = load_stages(source)
    dev, prod = stages["dev"], stages["prod"]
    _register(source, moto, trained)  # the training output in dev's bucket
    pin = _pin_for(trained, dev)
    release = tmp_path / "release"
    release.mkdir()
    (release / "model.json").write_bytes(release_model_bytes(pin, SAMPLE))
    dev_s3 = moto.client(dev, "s3")
    staged = ensure_stage_artifact(pin.model, dev, dev_s3, dev_s3)  # what dev's deploy does
    assert staged.how.startswith("copied from s3://mlops-dev-artifacts-")
    prod_s3, prod_sm = moto.client(prod, "s3"), moto.client(prod, "sagemaker")
    prod_s3.create_bucket(
        Bucket=prod.artifact_bucket_name, CreateBucketConfiguration={"LocationConstraint": prod.region}
    )
    prod_sm.create_model_package_group(ModelPackageGroupName=prod.model_package_group_name)
    # Before promotion prod's deploy refuses: it never reads dev's bucket.
    with pytest.raises(ArtifactMissing, match="stage 'prod': s3://mlops-prod-artifacts-222222222222-eu-west-1/models/"):
        ensure_stage_artifact(pin.model, prod, prod_s3, None)

    carried = carry_model(release, dev, prod, moto)
    assert carried is not None and carried.registered
    assert carried.artifact.uri == f"s3://{prod.artifact_bucket_name}/models/{trained.sha256}/model.tar.gz"
    package = prod_sm.describe_model_package(ModelPackageName=carried.package_arn)
    assert package["ModelApprovalStatus"] == "Approved"
    assert carried.package_arn.split(":")[4] == prod.account
    assert package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == carried.artifact.uri
    metrics_uri = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    bucket, _, key = metrics_uri.removeprefix("s3://").partition("/")
    report = json.loads(prod_s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert report["binary_classification_metrics"]["auc"]["value"] == trained.metrics["auc"]
    again = carry_model(release, dev, prod, moto)  # re-running a promotion converges
    assert again is not None and not again.registered and again.package_arn == carried.package_arn

    # Dev's artifacts are overwritten, then deleted: prod's deploy still finds the pinned bytes in its own bucket.
    for key in (pin.model.stage_artifact(dev)[1], pin.model.artifact.uri.split("/", 3)[3]):
        dev_s3.put_object(Bucket=dev.artifact_bucket_name, Key=key, Body=b"tampered")
    assert ensure_stage_artifact(pin.model, prod, prod_s3, None).how.startswith("in place")
    for key in (pin.model.stage_artifact(dev)[1], pin.model.artifact.uri.split("/", 3)[3]):
        dev_s3.delete_object(Bucket=dev.artifact_bucket_name, Key=key)
    served = prod_s3.get_object(Bucket=prod.artifact_bucket_name, Key=pin.model.stage_artifact(prod)[1])["Body"].read()
    assert hashlib.sha256(served).hexdigest() == trained.sha256 == pin.model.artifact.sha256
    assert run_locally(served, SAMPLE, 5000).ok

    # A promotion from a dev whose copy was changed carries nothing: the bytes must hash to the pin.
    prod_s3.delete_object(Bucket=prod.artifact_bucket_name, Key=pin.model.stage_artifact(prod)[1])
    dev_s3.put_object(Bucket=dev.artifact_bucket_name, Key=pin.model.stage_artifact(dev)[1], Body=b"tampered")
    with pytest.raises(ModelPinError, match="has sha256 .*, the pin says .*; refusing to serve it"):
        carry_model(release, dev, prod, moto)
    with pytest.raises(ArtifactMissing):
        ensure_stage_artifact(pin.model, prod, prod_s3, None)


# ---------------------------------------------------------------- the change a release makes


def test_the_model_change_names_old_and_new_package_and_metrics(trained):
    from gitops.config import StageConfig

    dev = StageConfig(stage="dev", account="111111111111", region="eu-west-1")
    old = _pin_for(trained, dev)
    assert old.model is not None
    better = old.model.model_copy(
        update={"package_arn": GOOD_ARN, "metrics": {**old.model.metrics, "auc": old.model.auc + 0.01}}
    )
    change = model_change(old, ModelPin(model=better))
    assert change.changed and change.package == (old.model.package_arn, GOOD_ARN)
    assert change.headline() == f"model: {old.describe()} -> {ModelPin(model=better).describe()}"
    assert f"AUC {old.model.auc:.4f} -> {better.auc:.4f}" in change.lines
    assert change.lines[0] == f"package {old.model.package_arn} -> {GOOD_ARN}"
    first = model_change(None, old)
    assert first.before == "none (no release)" and first.lines[0].startswith("package none -> ")
    same = model_change(old, old)
    assert not same.changed and same.headline().endswith("(unchanged)")


# ---------------------------------------------------------------- blue/green rollback (AWS, Stubber)


def test_a_rolled_back_blue_green_update_is_reported_naming_the_alarm():
    from gitops.config import StageConfig
    from gitops.deploy.endpoint_rollback import explain_rollback

    cfg = StageConfig(stage="dev", account="111111111111", region="eu-west-1")
    keys = {"region_name": "eu-west-1", "aws_access_key_id": "x", "aws_secret_access_key": "x"}
    sm, cw = boto3.client("sagemaker", **keys), boto3.client("cloudwatch", **keys)
    alarms = [{"AlarmName": "mlops-dev-endpoint-5xx-errors"}, {"AlarmName": "mlops-dev-endpoint-model-latency"}]
    with Stubber(sm) as sm_stub, Stubber(cw) as cw_stub:
        sm_stub.add_response(
            "describe_endpoint",
            {
                "EndpointName": cfg.endpoint_name,
                "EndpointArn": f"arn:aws:sagemaker:eu-west-1:111111111111:endpoint/{cfg.endpoint_name}",
                "EndpointConfigName": "old-config",
                "EndpointStatus": "InService",
                "FailureReason": "Update rolled back: an alarm in the auto-rollback configuration was triggered",
                "CreationTime": "2026-01-01T00:00:00Z",
                "LastModifiedTime": "2026-01-01T00:10:00Z",
                "LastDeploymentConfig": {
                    "BlueGreenUpdatePolicy": {
                        "TrafficRoutingConfiguration": {
                            "Type": "CANARY",
                            "WaitIntervalInSeconds": 300,
                            "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
                        }
                    },
                    "AutoRollbackConfiguration": {"Alarms": alarms},
                },
            },
            {"EndpointName": cfg.endpoint_name},
        )
        cw_stub.add_response(
            "describe_alarms",
            {
                "MetricAlarms": [
                    {"AlarmName": "mlops-dev-endpoint-5xx-errors", "StateValue": "ALARM", "StateReason": "3 >= 1"},
                    {"AlarmName": "mlops-dev-endpoint-model-latency", "StateValue": "OK", "StateReason": "fine"},
                ]
            },
            {"AlarmNames": [a["AlarmName"] for a in alarms]},
        )
        message = explain_rollback(sm, cw, cfg)
    assert message is not None
    assert message.startswith(
        "endpoint mlops-dev-endpoint rolled back the new model: alarm mlops-dev-endpoint-5xx-errors"
    )
    assert "model-latency" not in message.split(";")[0]

    with Stubber(sm) as sm_stub:  # an endpoint that did not roll back: the stack's own reason stands
        sm_stub.add_client_error("describe_endpoint", "ValidationException", "Could not find endpoint")
        assert explain_rollback(sm, cw, cfg) is None


def test_a_codecommit_proposal_opens_its_pull_request_through_the_api():
    from gitops.model.propose import Proposal
    from gitops.model.pull_request import open_codecommit_pr

    proposal = Proposal(
        True,
        "proposed",
        GOOD_ARN,
        "model/mlops-dev-models-3",
        "c0ffee",
        "Serve model x/3 (was none)\n\n- AUC: none -> 0.91\n",
    )
    client = boto3.client("codecommit", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        stub.add_response(
            "create_pull_request",
            {"pullRequest": {"pullRequestId": "42", "title": "t", "pullRequestTargets": []}},
            {
                "title": "Serve model x/3 (was none)",
                "description": proposal.description,
                "targets": [
                    {
                        "repositoryName": "source",
                        "sourceReference": "model/mlops-dev-models-3",
                        "destinationReference": "main",
                    }
                ],
            },
        )
        assert open_codecommit_pr(client, "source", proposal, "main") == "42"


def test_diff_and_model_show_name_the_model_change_between_releases(tmp_path: Path):
    """(7) What a reviewer and the approver read: package old -> new and the metrics, in text, markdown and JSON."""
    from release_builder import build_release
    from typer.testing import CliRunner

    from gitops.cli import _register_commands, app
    from gitops.release.diff import ReleaseDiff, diff_releases
    from gitops.release.manifest import StageSummary

    def release(name: str, pin: str) -> Path:
        stages = {
            "dev": StageSummary(account="111111111111", region="eu-west-1", promote_to=None, stacks={}, pipelines={})
        }
        build_release(tmp_path / name, {"model.json": pin.encode()}, stages, scanned=False)
        return tmp_path / name

    empty = release("old", '{"model": null}')
    pinned = json.dumps({"model": load_pin(write_pin(tmp_path / "src", GOOD_PIN)).model.model_dump(mode="json")})
    new = release("new", pinned)
    change = diff_releases(empty, new)
    text = change.to_text()
    assert not change.empty
    assert f"model: none pinned (no endpoint) -> mlops-dev-models/3 sha256 {'a' * 12} auc 0.9100" in text
    assert f"  ~ package none -> {GOOD_ARN}" in text and "  ~ AUC none -> 0.9100" in text
    assert "**model: none pinned (no endpoint) -> mlops-dev-models/3" in change.to_markdown()
    assert ReleaseDiff.from_dict(json.loads(json.dumps(change.to_dict()))).to_text() == text
    assert diff_releases(new, new).empty  # the same model: nothing to show

    _register_commands()
    shown = CliRunner().invoke(app, ["model", "show", "--release", str(new), "--against", str(empty)])
    assert shown.exit_code == 0, shown.output
    assert shown.output.startswith("model: none pinned (no endpoint) -> mlops-dev-models/3")
