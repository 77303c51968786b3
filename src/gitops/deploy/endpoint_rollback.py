"""A blue/green endpoint update that SageMaker rolled back: which alarm did it, said as the deploy's failure.

The Inference stack's endpoint shifts traffic to a new model by canary and rolls back when one of
its alarms fires (infra/stacks/inference.py). CloudFormation then reports the update as failed with
SageMaker's words; this reads the endpoint and the rollback alarms back and names the alarm.
"""

from __future__ import annotations

from typing import Any

from gitops.config import StageConfig
from gitops.deploy.aws import AWS_ERRORS


def rollback_alarms(endpoint: dict) -> list[str]:
    """The alarm names of the endpoint's AutoRollbackConfiguration (from DescribeEndpoint)."""
    config = endpoint.get("LastDeploymentConfig") or endpoint.get("DeploymentConfig") or {}
    return [a["AlarmName"] for a in (config.get("AutoRollbackConfiguration") or {}).get("Alarms", [])]


def explain_rollback(sagemaker: Any, cloudwatch: Any, config: StageConfig) -> str | None:
    """ "endpoint X rolled back the new model: alarm Y fired (reason)", or None when no rollback is seen."""
    try:
        endpoint = sagemaker.describe_endpoint(EndpointName=config.endpoint_name)
    except AWS_ERRORS:
        return None
    names = rollback_alarms(endpoint)
    reason = str(endpoint.get("FailureReason") or "")
    if not names or ("roll" not in reason.lower() and endpoint.get("EndpointStatus") != "UpdateRollbackFailed"):
        return None
    try:
        alarms = cloudwatch.describe_alarms(AlarmNames=names)["MetricAlarms"]
    except AWS_ERRORS:
        alarms = []
    firing = [a for a in alarms if a.get("StateValue") == "ALARM"]
    if firing:
        fired = "; ".join(f"alarm {a['AlarmName']} fired ({a.get('StateReason', '')[:120]})" for a in firing)
    else:
        named = [n for n in names if n in reason]
        fired = f"alarm {', '.join(named)} fired" if named else f"one of {', '.join(names)} fired"
    return f"endpoint {config.endpoint_name} rolled back the new model: {fired}; SageMaker: {reason[:160]}"
