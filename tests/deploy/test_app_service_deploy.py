"""Deploy and the App service (Stubber: the real ECS API shapes): steady on the digest, or a rollback FAILS."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from gitops.config import load_stages
from gitops.deploy.app_service import image_parameters, wait_for_service
from gitops.deploy.plan import StackPlan
from gitops.errors import DeployFailed
from gitops.release.app_image import parse_image, release_app_bytes

ROOT = Path(__file__).resolve().parents[2]
CFG = load_stages(ROOT)["dev"]
NEW = "sha256:" + "ab" * 32
OLD = "sha256:" + "cd" * 32
IMAGE = parse_image(f"111111111111.dkr.ecr.eu-west-1.amazonaws.com/mlops-dev-app@{NEW}", "app/image.yaml")
REPO = "111111111111.dkr.ecr.eu-west-1.amazonaws.com/mlops-dev-app"
assert IMAGE is not None
SERVICE_ARN = "arn:aws:ecs:eu-west-1:111111111111:service/mlops-dev-app/mlops-dev-app"


def _ecs():
    return boto3.client("ecs", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")


def _deployment(td: str, status: str, rollout: str, reason: str = "", running: int = 1) -> dict:
    found = {
        "id": f"ecs-svc/{td[-1]}{status}",
        "status": status,
        "taskDefinition": f"arn:aws:ecs:eu-west-1:111111111111:task-definition/mlops-dev-app:{td}",
        "desiredCount": 1,
        "runningCount": running,
        "rolloutState": rollout,
    }
    if reason:
        found["rolloutStateReason"] = reason
    return found


def _services(*deployments: dict) -> dict:
    return {"services": [{"serviceArn": SERVICE_ARN, "serviceName": "mlops-dev-app", "deployments": list(deployments)}]}


def _task_definition(td: str, digest: str) -> dict:
    return {
        "taskDefinition": {
            "taskDefinitionArn": f"arn:aws:ecs:eu-west-1:111111111111:task-definition/mlops-dev-app:{td}",
            "containerDefinitions": [
                {"name": "otel-collector", "image": "collector"},
                {"name": "app", "image": f"{REPO}@{digest}"},
            ],
        }
    }


def _stack(template: dict) -> StackPlan:
    return StackPlan("App", "mlops-dev-app", "stages/dev/templates/App.template.json", template, template, None, [])


DESCRIBE = {"cluster": "mlops-dev-app", "services": ["mlops-dev-app"]}


def test_a_service_that_settles_on_the_release_digest_passes():
    ecs = _ecs()
    with Stubber(ecs) as stub:
        stub.add_response(
            "describe_services",
            _services(_deployment("2", "PRIMARY", "IN_PROGRESS", running=0), _deployment("1", "ACTIVE", "COMPLETED")),
            DESCRIBE,
        )
        stub.add_response(
            "describe_task_definition",
            _task_definition("2", NEW),
            {"taskDefinition": _deployment("2", "", "")["taskDefinition"]},
        )
        stub.add_response("describe_services", _services(_deployment("2", "PRIMARY", "COMPLETED")), DESCRIBE)
        stub.add_response(
            "describe_task_definition",
            _task_definition("2", NEW),
            {"taskDefinition": _deployment("2", "", "")["taskDefinition"]},
        )
        slept: list[float] = []
        state = wait_for_service(ecs, CFG, IMAGE, sleep=slept.append, delay=7)
        stub.assert_no_pending_responses()
    assert state.primary_image == f"{REPO}@{NEW}" and state.settled
    assert slept == [7]


def test_a_circuit_breaker_rollback_is_a_failure_naming_the_reason():
    """amazon-ecs-deploy-task-definition #191/#494: a rolled-back deployment must not read as success."""
    ecs = _ecs()
    reason = "ECS deployment circuit breaker: tasks failed to start."
    with Stubber(ecs) as stub:
        stub.add_response(
            "describe_services",
            _services(
                _deployment("1", "PRIMARY", "IN_PROGRESS", running=0), _deployment("2", "ACTIVE", "FAILED", reason)
            ),
            DESCRIBE,
        )
        stub.add_response(
            "describe_task_definition",
            _task_definition("2", NEW),
            {"taskDefinition": _deployment("2", "", "")["taskDefinition"]},
        )
        stub.add_response(
            "describe_task_definition",
            _task_definition("1", OLD),
            {"taskDefinition": _deployment("1", "", "")["taskDefinition"]},
        )
        with pytest.raises(DeployFailed) as info:
            wait_for_service(ecs, CFG, IMAGE, sleep=lambda _s: None)
    message = str(info.value)
    assert "rolled back the release's image" in message and reason in message


def test_a_service_settled_back_on_the_old_image_is_a_failure():
    ecs = _ecs()
    with Stubber(ecs) as stub:
        stub.add_response("describe_services", _services(_deployment("1", "PRIMARY", "COMPLETED")), DESCRIBE)
        stub.add_response(
            "describe_task_definition",
            _task_definition("1", OLD),
            {"taskDefinition": _deployment("1", "", "")["taskDefinition"]},
        )
        with pytest.raises(DeployFailed, match=f"the service runs {REPO}@{OLD}, not the release's image"):
            wait_for_service(ecs, CFG, IMAGE, sleep=lambda _s: None)


def test_a_service_that_never_settles_fails_after_the_timeout():
    ecs = _ecs()
    with Stubber(ecs) as stub:
        stub.add_response(
            "describe_services", _services(_deployment("2", "PRIMARY", "IN_PROGRESS", running=0)), DESCRIBE
        )
        stub.add_response(
            "describe_task_definition",
            _task_definition("2", NEW),
            {"taskDefinition": _deployment("2", "", "")["taskDefinition"]},
        )
        with pytest.raises(DeployFailed, match="not steady on the release.s image after -1s"):
            wait_for_service(ecs, CFG, IMAGE, sleep=lambda _s: None, timeout=-1)


def test_the_app_stack_gets_the_release_digest_or_empty_for_no_app(tmp_path: Path):
    app = _stack({"Parameters": {"ImageDigest": {"Type": "String", "Default": ""}}, "Resources": {}})
    (tmp_path / "app.json").write_bytes(release_app_bytes(IMAGE))
    assert image_parameters(app, tmp_path) == [{"ParameterKey": "ImageDigest", "ParameterValue": NEW}]
    (tmp_path / "app.json").write_bytes(release_app_bytes(None))
    assert image_parameters(app, tmp_path) == [{"ParameterKey": "ImageDigest", "ParameterValue": ""}]
    other = _stack({"Resources": {}})
    assert image_parameters(other, tmp_path) == []
    assert json.loads((tmp_path / "app.json").read_text())["image"] is None
