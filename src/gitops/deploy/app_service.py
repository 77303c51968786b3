"""The App stack's image and service at deploy time: the release's digest in, the service's steady state out.

A deployment the ECS circuit breaker (or a rollback alarm) rolled back is a FAILURE here, whatever
CloudFormation or the ECS console call it: the service must run the release's digest, settled.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops.config import StageConfig
from gitops.deploy.plan import StackPlan
from gitops.errors import DeployFailed
from gitops.release.app_image import AppImage, read_release_app

IMAGE_DIGEST_PARAMETER = "ImageDigest"
APP_CONTAINER = "app"  # infra/stacks/app.py
STEADY_TIMEOUT = 1800.0


def runs_app(stack: StackPlan) -> bool:
    return IMAGE_DIGEST_PARAMETER in stack.parameters


def image_parameters(stack: StackPlan, release_dir: Path) -> list[dict[str, str]]:
    """The ImageDigest parameter of the App stack: the release's digest, or "" (no service) when none is pinned."""
    if not runs_app(stack):
        return []
    image = read_release_app(release_dir)
    return [{"ParameterKey": IMAGE_DIGEST_PARAMETER, "ParameterValue": image.digest if image else ""}]


@dataclass
class ServiceState:
    """What the service runs now, read from ECS."""

    primary_image: str | None
    settled: bool  # one deployment, COMPLETED, running what it wants
    failed_reason: str | None  # a deployment of the release's image that ECS rolled back


def read_service(ecs: Any, cfg: StageConfig, expected: str) -> ServiceState:
    services = ecs.describe_services(cluster=cfg.app_cluster_name, services=[cfg.app_service_name])["services"]
    if not services:
        raise DeployFailed(f"ECS service {cfg.app_service_name} in cluster {cfg.app_cluster_name}: not found")
    service = services[0]
    images: dict[str, str | None] = {}

    def image_of(task_definition: str) -> str | None:
        if task_definition not in images:
            found = ecs.describe_task_definition(taskDefinition=task_definition)["taskDefinition"]
            containers = {c["name"]: c.get("image") for c in found.get("containerDefinitions", [])}
            images[task_definition] = containers.get(APP_CONTAINER)
        return images[task_definition]

    deployments = service.get("deployments", [])
    primary = next((d for d in deployments if d.get("status") == "PRIMARY"), None)
    failed = [d for d in deployments if d.get("rolloutState") == "FAILED" and image_of(d["taskDefinition"]) == expected]
    primary_image = image_of(primary["taskDefinition"]) if primary else None
    reason = None
    if failed:
        reason = failed[0].get("rolloutStateReason") or "deployment FAILED"
    elif primary is not None and primary_image != expected and primary.get("rolloutState") != "IN_PROGRESS":
        reason = f"the service runs {primary_image}, not the release's image"
    settled = (
        primary is not None
        and len(deployments) == 1
        and primary.get("rolloutState") == "COMPLETED"
        and primary.get("runningCount") == primary.get("desiredCount")
    )
    return ServiceState(primary_image, settled, reason)


def wait_for_service(
    ecs: Any,
    cfg: StageConfig,
    image: AppImage,
    *,
    delay: float = 15.0,
    timeout: float = STEADY_TIMEOUT,
    sleep: Callable[[float], None] = time.sleep,
    say: Callable[[str], None] = lambda _m: None,
) -> ServiceState:
    """Until the service runs the release's image, settled; a rollback (circuit breaker or alarm) is a failure."""
    expected = image.in_stage(cfg)
    deadline = time.monotonic() + timeout
    while True:
        state = read_service(ecs, cfg, expected)
        if state.failed_reason:
            raise DeployFailed(
                f"ECS service {cfg.app_service_name} rolled back the release's image {image.digest[:19]}...:"
                f" {state.failed_reason}"
            )
        if state.settled and state.primary_image == expected:
            say(f"{cfg.app_service_name}: steady, running {image.digest[:19]}...")
            return state
        if time.monotonic() > deadline:
            raise DeployFailed(
                f"ECS service {cfg.app_service_name}: not steady on the release's image after {int(timeout)}s"
            )
        sleep(delay)
