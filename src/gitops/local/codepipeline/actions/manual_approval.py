"""Approval/AWS/Manual: the caller's approval gate decides; a rejection ends the execution as Rejected."""

from __future__ import annotations

from dataclasses import dataclass

from gitops.local.codepipeline.model import Action, PipelineRunnerError
from gitops.local.codepipeline.registry import ActionContext, ActionFailed, ActionKind, ActionOutcome, ActionTemplate


@dataclass(frozen=True, kw_only=True)
class ApprovalAction(Action):
    custom_data: str | None  # may hold #{Namespace.Name} variables, resolved when the approval is asked
    external_link: str | None


def read(template: ActionTemplate) -> ApprovalAction:
    if template.input_artifacts or template.output_artifacts:
        raise template.error("a manual approval takes no input or output artifacts")
    return ApprovalAction(
        **template.common(),
        custom_data=template.optional_text("CustomData"),
        external_link=template.optional_text("ExternalEntityLink"),
    )


def run(action: ApprovalAction, context: ActionContext) -> ActionOutcome:
    where = context.where
    custom = context.substitute(action.custom_data, f"{where}: CustomData") if action.custom_data else None
    if action.external_link:  # resolved as CodePipeline would: a variable no earlier action exported fails here
        context.substitute(action.external_link, f"{where}: ExternalEntityLink")
    decision, summary = context.approval_gate(context.stage, action.name, custom)
    if decision == "Approved":
        return ActionOutcome(message=summary)
    if decision == "Rejected":
        raise ActionFailed(f"rejected: {summary}" if summary else "rejected", status="Rejected")
    raise PipelineRunnerError(f"{where}: the approval gate answered {decision!r}, not 'Approved' or 'Rejected'")


KIND = ActionKind(("Approval",), "AWS", "Manual", read, run)
