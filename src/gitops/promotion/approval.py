"""The approval click: approve or reject exactly one release id waiting at a stage's gate.

Embedded target: the local state store. AWS: the manual approval action of the stage's
CodePipeline (GetPipelineState for the token, PutApprovalResult), after checking that the
execution waiting there carries the release id the approver was shown.
"""

from __future__ import annotations

from dataclasses import dataclass

from gitops.config import StageConfig
from gitops.promotion.evidence import APPROVAL_STAGE, execution_release_id
from gitops.promotion.state import Approval, ApprovalMissing, LocalState
from gitops.target import Target


@dataclass(frozen=True)
class PendingApproval:
    stage: str
    release_id: str
    execution_id: str | None
    requested_at: str | None
    diff_summary: str | None = None
    token: str | None = None  # CodePipeline's approval token (AWS only)
    action_name: str | None = None


def _match(
    pending: list[PendingApproval], release_prefix: str | None, stage: str, decided: list[Approval] | None = None
) -> PendingApproval:
    """The one waiting approval the approver means, or an error saying what is true at the gate."""
    waiting = ", ".join(p.release_id[:12] for p in pending)
    if release_prefix is None:
        if not pending:
            raise ApprovalMissing(f"nothing is waiting for approval in stage {stage}")
        if len(pending) > 1:
            raise ApprovalMissing(f"several releases wait in stage {stage} ({waiting}); name one with --release")
        return pending[0]
    if len(release_prefix) < 7:
        raise ApprovalMissing(f"--release {release_prefix}: give at least 7 characters of the release id")
    found = [p for p in pending if p.release_id.startswith(release_prefix)]
    if len(found) > 1:
        matches = ", ".join(p.release_id[:16] for p in found)
        raise ApprovalMissing(f"--release {release_prefix} matches several waiting releases ({matches}); give more")
    if found:
        return found[0]
    earlier = [a for a in decided or [] if a.release_id.startswith(release_prefix) and a.status != "waiting"]
    if earlier:
        last = earlier[-1]
        raise ApprovalMissing(
            f"release {last.release_id[:12]} is not waiting in stage {stage}: it was {last.status} by"
            f" {last.decided_by} at {last.decided_at}" + (f" (waiting: {waiting})" if pending else "")
        )
    raise ApprovalMissing(
        f"release {release_prefix} is not waiting for approval in stage {stage}; "
        + (f"waiting: {waiting}" if pending else "nothing is waiting there")
    )


def pending_approvals(stage: StageConfig, target: Target) -> list[PendingApproval]:
    if target.is_local:
        assert target.local_dir is not None
        return [
            PendingApproval(a.stage, a.release_id, a.execution_id, a.requested_at, a.diff_summary)
            for a in LocalState(target.local_dir).waiting()
            if a.stage == stage.stage
        ]
    return _aws_pending(stage, target)


def _aws_pending(stage: StageConfig, target: Target) -> list[PendingApproval]:
    session = target.session(stage)
    pipeline = target.client(stage, "codepipeline", session)
    state = pipeline.get_pipeline_state(name=stage.release_pipeline_name)
    pending = []
    for st in state.get("stageStates", []):
        if st.get("stageName") != APPROVAL_STAGE:
            continue
        execution_id = (st.get("latestExecution") or {}).get("pipelineExecutionId")
        for action in st.get("actionStates", []):
            latest = action.get("latestExecution") or {}
            if latest.get("status") != "InProgress" or not latest.get("token"):
                continue
            release_id = execution_release_id(stage, target, execution_id, session)
            pending.append(
                PendingApproval(
                    stage.stage,
                    release_id,
                    execution_id,
                    str(latest.get("lastStatusChange", "")),
                    token=latest["token"],
                    action_name=action["actionName"],
                )
            )
    return pending


def decide(
    stage: StageConfig, target: Target, *, approved: bool, release_prefix: str | None, summary: str | None
) -> PendingApproval:
    """Approve or reject the waiting release that matches release_prefix (or the only one waiting)."""
    decided = LocalState(target.local_dir).approvals(stage.stage) if target.local_dir is not None else None
    chosen = _match(pending_approvals(stage, target), release_prefix, stage.stage, decided)
    text = f"release {chosen.release_id}: {summary or ('approved' if approved else 'rejected')}"
    if target.is_local:
        assert target.local_dir is not None
        LocalState(target.local_dir).decide(stage.stage, chosen.release_id, approved, summary)
        return chosen
    pipeline = target.client(stage, "codepipeline")
    pipeline.put_approval_result(
        pipelineName=stage.release_pipeline_name,
        stageName=APPROVAL_STAGE,
        actionName=chosen.action_name,
        result={"summary": text[:512], "status": "Approved" if approved else "Rejected"},
        token=chosen.token,
    )
    return chosen
