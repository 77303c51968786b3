"""What a promotion must be able to prove: the release was verified in its stage and approved.

Embedded target: the local state store. AWS: the CodePipeline execution that runs the Promote
action (its Deploy and Verify actions succeeded, its manual approval was approved); the release
id is tied to that execution through the source commit it checked out.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Protocol

from gitops.config import StageConfig
from gitops.errors import GitopsError
from gitops.promotion.state import Approval, ApprovalMissing, LocalState, now
from gitops.target import Target

# Set on every CodeBuild action by infra (components/pipeline_actions.py) from #{codepipeline.PipelineExecutionId}.
EXECUTION_ENV = "PIPELINE_EXECUTION_ID"
MANIFEST_PATH = "release/manifest.json"
APPROVAL_STAGE = "Approve"


class EvidenceError(GitopsError):
    hint = "run promote from the stage's pipeline (the Promote action) or on the embedded target"


class Evidence(Protocol):
    def verified(self, stage: StageConfig, release_id: str) -> bool: ...

    def approval(self, stage: StageConfig, release_id: str) -> Approval | None: ...


@dataclass
class LocalEvidence:
    """The embedded target's records, signed by this machine's engine (state.py).

    Inside a local pipeline execution (PIPELINE_EXECUTION_ID set, as CodeBuild sets it) the
    verification and the approval must both come from that execution, as on AWS.
    """

    state: LocalState
    execution_id: str | None = None

    def verified(self, stage: StageConfig, release_id: str) -> bool:
        record = self.state.verification(stage.stage, release_id)
        return record is not None and (self.execution_id is None or record.execution_id == self.execution_id)

    def approval(self, stage: StageConfig, release_id: str) -> Approval | None:
        record = self.state.approval(stage.stage, release_id)
        if record is not None and self.execution_id is not None and record.execution_id != self.execution_id:
            raise ApprovalMissing(
                f"release {release_id[:12]} was approved in stage {stage.stage} by execution {record.execution_id},"
                f" not by this execution ({self.execution_id}); refusing"
            )
        return record


def execution_release_id(stage: StageConfig, target: Target, execution_id: str | None, session: Any = None) -> str:
    """The release id in the source commit of a pipeline execution (what the approver approves)."""
    pipeline = target.client(stage, "codepipeline", session)
    execution = pipeline.get_pipeline_execution(
        pipelineName=stage.release_pipeline_name, pipelineExecutionId=execution_id
    )["pipelineExecution"]
    revisions = execution.get("artifactRevisions") or []
    if not revisions:
        raise ApprovalMissing(f"pipeline execution {execution_id} has no source revision")
    commit = revisions[0]["revisionId"]
    codecommit = target.client(stage, "codecommit", session)
    blob = codecommit.get_file(
        repositoryName=stage.env_repository_name, commitSpecifier=commit, filePath=MANIFEST_PATH
    )["fileContent"]
    return json.loads(blob)["release_id"]


@dataclass
class PipelineEvidence:
    """Evidence read from the CodePipeline execution that runs this Promote action."""

    target: Target
    execution_id: str
    # The release in the execution's source commit, read from the repository (never from the
    # caller's --release): an approval in this execution is an approval of exactly that release.
    _held: dict[str, str] = field(default_factory=dict)

    def held_release_id(self, stage: StageConfig) -> str:
        if stage.stage not in self._held:
            self._held[stage.stage] = execution_release_id(stage, self.target, self.execution_id)
        return self._held[stage.stage]

    def _actions(self, stage: StageConfig) -> list[dict[str, Any]]:
        client = self.target.client(stage, "codepipeline")
        name = stage.release_pipeline_name
        found: list[dict[str, Any]] = []
        token = None
        while True:
            kwargs: dict[str, Any] = {"pipelineName": name, "filter": {"pipelineExecutionId": self.execution_id}}
            if token:
                kwargs["nextToken"] = token
            page = client.list_action_executions(**kwargs)
            found += page.get("actionExecutionDetails", [])
            token = page.get("nextToken")
            if not token:
                return found

    def _succeeded(self, stage: StageConfig, stage_name: str) -> dict | None:
        for action in self._actions(stage):
            if action.get("stageName") == stage_name and action.get("status") == "Succeeded":
                return action
        return None

    def verified(self, stage: StageConfig, release_id: str) -> bool:
        return release_id == self.held_release_id(stage) and self._succeeded(stage, "Verify") is not None

    def approval(self, stage: StageConfig, release_id: str) -> Approval | None:
        if release_id != self.held_release_id(stage):
            return None
        action = self._succeeded(stage, APPROVAL_STAGE)
        if action is None:
            return None
        result = (action.get("output") or {}).get("executionResult") or {}
        return Approval(
            stage=stage.stage,
            release_id=release_id,
            status="approved",
            requested_at=str(action.get("startTime", "")),
            execution_id=self.execution_id,
            decided_at=str(action.get("lastUpdateTime", now())),
            decided_by=action.get("updatedBy"),
            summary=result.get("externalExecutionSummary"),
        )


def evidence_for(target: Target) -> Evidence:
    if target.is_local:
        assert target.local_dir is not None
        return LocalEvidence(LocalState(target.local_dir), os.environ.get(EXECUTION_ENV) or None)
    execution_id = os.environ.get(EXECUTION_ENV)
    if not execution_id:
        raise EvidenceError(
            f"{EXECUTION_ENV} is not set: on AWS, promote runs inside the pipeline execution it promotes"
        )
    return PipelineEvidence(target, execution_id)


def require_approved(evidence: Evidence, stage: StageConfig, release_id: str) -> Approval:
    record = evidence.approval(stage, release_id)
    if record is None or record.status == "waiting":
        raise ApprovalMissing(f"release {release_id[:12]} has no approval in stage {stage.stage}")
    if record.status == "rejected":
        raise ApprovalMissing(
            f"release {release_id[:12]} was rejected in stage {stage.stage}"
            f" by {record.decided_by}: {record.summary or 'no reason given'}"
        )
    return record
