"""SageMaker pipeline executions on AWS: start one, follow it, and read its steps as the local executor records them."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from gitops.local.executor.record import PipelineExecution, StepRun
from gitops.progress import Progress, silent

TERMINAL = ("Succeeded", "Failed", "Stopped")
# ListPipelineExecutionSteps names a step's kind by the Metadata member it fills.
_METADATA_TYPES = {
    "ProcessingJob": "Processing",
    "TrainingJob": "Training",
    "Condition": "Condition",
    "Fail": "Fail",
    "RegisterModel": "RegisterModel",
    "Model": "Model",
    "TransformJob": "Transform",
    "TuningJob": "Tuning",
    "Lambda": "Lambda",
    "EMR": "EMR",
    "QualityCheck": "QualityCheck",
    "ClarifyCheck": "ClarifyCheck",
    "Callback": "Callback",
}


def start_execution(sm: Any, pipeline_name: str, parameters: Mapping[str, str], display_name: str | None = None) -> str:
    """StartPipelineExecution; the execution's ARN."""
    request: dict[str, Any] = {
        "PipelineName": pipeline_name,
        "PipelineParameters": [{"Name": k, "Value": str(v)} for k, v in parameters.items()],
    }
    if display_name:
        request["PipelineExecutionDisplayName"] = display_name
    return sm.start_pipeline_execution(**request)["PipelineExecutionArn"]


def execution_steps(sm: Any, execution_arn: str) -> list[StepRun]:
    """ListPipelineExecutionSteps (every page), oldest first."""
    steps: list[StepRun] = []
    token: str | None = None
    while True:
        request: dict[str, Any] = {"PipelineExecutionArn": execution_arn, "SortOrder": "Ascending"}
        if token:
            request["NextToken"] = token
        page = sm.list_pipeline_execution_steps(**request)
        for item in page.get("PipelineExecutionSteps", []):
            started, ended = item.get("StartTime"), item.get("EndTime")
            kind = next((_METADATA_TYPES[k] for k in item.get("Metadata", {}) if k in _METADATA_TYPES), "")
            steps.append(
                StepRun(
                    name=item["StepName"],
                    type=kind,
                    status=item.get("StepStatus", ""),
                    started=_iso(started),
                    ended=_iso(ended),
                    seconds=round((ended - started).total_seconds(), 3) if started and ended else None,
                    failure_reason=item.get("FailureReason"),
                    metadata=item.get("Metadata", {}),
                )
            )
        token = page.get("NextToken")
        if not token:
            return steps


def describe_execution(sm: Any, execution_arn: str, stage: str) -> PipelineExecution:
    described = sm.describe_pipeline_execution(PipelineExecutionArn=execution_arn)
    started, ended = described.get("CreationTime"), described.get("LastModifiedTime")
    status = described.get("PipelineExecutionStatus", "")
    record = PipelineExecution(
        execution_id=execution_arn.rsplit("/", 1)[-1],
        pipeline_name=execution_arn.split(":pipeline/", 1)[-1].split("/", 1)[0],
        stage=stage,
        status=status,
        started=_iso(started) or "",
        ended=_iso(ended) if status in TERMINAL else None,
        seconds=round((ended - started).total_seconds(), 3) if started and ended and status in TERMINAL else None,
        failure_reason=described.get("FailureReason"),
        target="aws",
    )
    record.steps = execution_steps(sm, execution_arn)
    return record


def wait_for_execution(
    sm: Any,
    execution_arn: str,
    stage: str,
    *,
    log: Progress = silent,
    poll_seconds: float = 15.0,
    timeout_seconds: float = 6 * 3600,
    sleep: Callable[[float], None] = time.sleep,
) -> PipelineExecution:
    """Poll until the execution ends (or the timeout), reporting each step as it changes."""
    seen: dict[str, str] = {}
    deadline = time.monotonic() + timeout_seconds
    while True:
        record = describe_execution(sm, execution_arn, stage)
        for step in record.steps:
            if seen.get(step.name) != step.status:
                seen[step.name] = step.status
                took = f" in {step.seconds:.1f}s" if step.seconds is not None else ""
                log(f"{step.name} ({step.type or '?'}): {step.status}{took}")
        if record.status in TERMINAL or time.monotonic() > deadline:
            return record
        sleep(poll_seconds)


def last_execution(sm: Any, pipeline_name: str, stage: str) -> PipelineExecution | None:
    """The newest execution of a pipeline with its steps, or None."""
    summaries = sm.list_pipeline_executions(PipelineName=pipeline_name, SortOrder="Descending", MaxResults=1)
    items = summaries.get("PipelineExecutionSummaries") or []
    return describe_execution(sm, items[0]["PipelineExecutionArn"], stage) if items else None


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def stage_pipeline_executions(target: Any, cfg: Any, pipelines: list[str]) -> list[dict]:
    """The last execution of each of a stage's pipelines, with its steps (`gitops status`)."""
    if target.is_local:
        from gitops.local.executor.record import last_executions

        records = last_executions(target.local_dir, cfg.stage)
    else:
        from botocore.exceptions import ClientError

        sm = target.client(cfg, "sagemaker")
        records = []
        for name in pipelines:
            try:
                record = last_execution(sm, cfg.pipeline_name(name), cfg.stage)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ResourceNotFound":
                    raise
                continue  # not deployed to this stage (yet)
            if record is not None:
                records.append(record)
    return [record.to_json() for record in records]


def execution_summary(execution: dict) -> str:
    """One line: the pipeline, its status, and each step that ran with its duration and failure reason."""
    parts = []
    for step in execution.get("steps", []):
        if step.get("status") == "NotRun":
            continue
        seconds = f" {step['seconds']:.1f}s" if step.get("seconds") is not None else ""
        reason = f" ({step['failure_reason']})" if step.get("failure_reason") else ""
        parts.append(f"{step['name']} {step['status']}{seconds}{reason}")
    return f"{execution['pipeline_name']} {execution['execution_id'][:12]}: {execution['status']}: " + ", ".join(parts)
