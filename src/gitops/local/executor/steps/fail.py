"""Fail steps: the execution ends Failed with the step's ErrorMessage (expressions resolved)."""

from __future__ import annotations

from gitops.local.executor.errors import StepFailed
from gitops.local.executor.registry import DefinitionStep, StepContext, StepKind, StepOutcome


def check(step: DefinitionStep) -> None:
    return None  # ErrorMessage is optional, as in SageMaker


def run(ctx: StepContext) -> StepOutcome:
    raise StepFailed(str(ctx.arguments.get("ErrorMessage", "")) or f"{ctx.step.where} ran")


KIND = StepKind("Fail", check, run)
