"""The execution record: one JSON file per execution, shaped like ListPipelineExecutionSteps, read by status."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gitops.files import atomic_write

RECORDS_DIR = "sagemaker-executions"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class StepRun:
    """One step of an execution: StepName, StepStatus, times and FailureReason, as SageMaker lists them."""

    name: str
    type: str
    status: str = "Starting"  # Starting | Executing | Succeeded | Failed | NotRun
    started: str | None = None
    ended: str | None = None
    seconds: float | None = None
    failure_reason: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class PipelineExecution:
    execution_id: str
    pipeline_name: str
    stage: str
    status: str = "Executing"  # Executing | Succeeded | Failed
    started: str = field(default_factory=now)
    ended: str | None = None
    seconds: float | None = None
    failure_reason: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    steps: list[StepRun] = field(default_factory=list)
    target: str = "local"

    def step(self, name: str) -> StepRun:
        return next(s for s in self.steps if s.name == name)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PipelineExecution:
        steps = [StepRun(**s) for s in data.get("steps", [])]
        return cls(**{**data, "steps": steps})


def save_execution(local_dir: Path, record: PipelineExecution) -> Path:
    path = local_dir / RECORDS_DIR / record.stage / record.pipeline_name / f"{record.execution_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(record.to_json(), indent=2, sort_keys=True) + "\n")
    return path


def last_executions(local_dir: Path, stage: str) -> list[PipelineExecution]:
    """The newest recorded execution of every pipeline of a stage, by pipeline name."""
    base = local_dir / RECORDS_DIR / stage
    found: list[PipelineExecution] = []
    for pipeline_dir in sorted(p for p in base.glob("*") if p.is_dir()):
        records = []
        for path in pipeline_dir.glob("*.json"):
            try:
                records.append(PipelineExecution.from_json(json.loads(path.read_text())))
            except (OSError, ValueError, TypeError):
                continue  # a record being written, or not ours: status shows the others
        if records:
            found.append(max(records, key=lambda r: r.started))
    return found
