"""The execution record: what ran, when, and how it ended, per stage and action (JSON for the state store)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gitops.local.buildspec_runner import BuildResult
from gitops.local.codepipeline.model import PipelineModel


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


ActionStatus = Literal["NotStarted", "InProgress", "Succeeded", "Failed", "Rejected"]


class ActionRecord(_Record):
    name: str
    category: str
    provider: str
    run_order: int
    status: ActionStatus = "NotStarted"
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_seconds: float | None = None
    message: str = ""  # why it failed, or the approval's summary
    output_variables: dict[str, str] = Field(default_factory=dict)
    build: BuildResult | None = None


class StageRecord(_Record):
    name: str
    status: Literal["NotStarted", "InProgress", "Succeeded", "Failed"] = "NotStarted"
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_seconds: float | None = None
    actions: list[ActionRecord]

    def action(self, name: str) -> ActionRecord:
        found = next((a for a in self.actions if a.name == name), None)
        if found is None:
            raise KeyError(f"stage {self.name} has no action {name!r}")
        return found


class ExecutionRecord(_Record):
    """One run of a pipeline; JSON via model_dump_json() / model_validate_json()."""

    execution_id: str
    pipeline_name: str
    template: str
    status: Literal["InProgress", "Succeeded", "Failed", "Rejected", "Stopped"] = "InProgress"
    started_at: datetime
    ended_at: datetime | None = None
    duration_seconds: float | None = None
    failed_stage: str | None = None
    failed_action: str | None = None
    failure: str | None = None
    stages: list[StageRecord]

    def stage(self, name: str) -> StageRecord:
        found = next((s for s in self.stages if s.name == name), None)
        if found is None:
            raise KeyError(f"execution {self.execution_id} has no stage {name!r}")
        return found

    @property
    def pending_approval(self) -> tuple[str, str] | None:
        """(stage, action) of the approval this execution waits for, if any."""
        for stage in self.stages:
            for action in stage.actions:
                if action.category == "Approval" and action.status == "InProgress":
                    return stage.name, action.name
        return None

    @classmethod
    def new(cls, model: PipelineModel, execution_id: str) -> ExecutionRecord:
        return cls(
            execution_id=execution_id,
            pipeline_name=model.name,
            template=model.template_path,
            started_at=now(),
            stages=[
                StageRecord(
                    name=stage.name,
                    actions=[
                        ActionRecord(name=a.name, category=a.category, provider=a.provider, run_order=a.run_order)
                        for a in stage.actions
                    ],
                )
                for stage in model.stages
            ],
        )


def now() -> datetime:
    return datetime.now(UTC)


def finish(record: ActionRecord | StageRecord | ExecutionRecord) -> None:
    """Stamp the end time and the duration."""
    record.ended_at = now()
    if record.started_at is not None:
        record.duration_seconds = round((record.ended_at - record.started_at).total_seconds(), 3)
