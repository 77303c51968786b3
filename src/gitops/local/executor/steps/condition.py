"""Condition steps: the conditions (all must hold) pick IfSteps or ElseSteps; the other branch does not run."""

from __future__ import annotations

from typing import Any

from gitops.local.executor.errors import StepFailed, UnsupportedStep
from gitops.local.executor.registry import DefinitionStep, StepContext, StepKind, StepOutcome

_COMPARE = {
    "Equals": lambda a, b: a == b,
    "GreaterThan": lambda a, b: a > b,
    "GreaterThanOrEqualTo": lambda a, b: a >= b,
    "LessThan": lambda a, b: a < b,
    "LessThanOrEqualTo": lambda a, b: a <= b,
}
KNOWN = (*_COMPARE, "In", "Not", "Or")


def _types(condition: dict) -> list[str]:
    found = [str(condition.get("Type"))]
    if condition.get("Type") == "Not":
        found += _types(condition.get("Expression", {}))
    if condition.get("Type") == "Or":
        for inner in condition.get("Conditions", []):
            found += _types(inner)
    return found


def check(step: DefinitionStep) -> None:
    for condition in step.arguments.get("Conditions", []):
        for kind in _types(condition):
            if kind not in KNOWN:
                raise UnsupportedStep(f"{step.where}: condition type {kind!r} is not one the executor evaluates")


def _number_or_text(value: Any) -> Any:
    if isinstance(value, bool | int | float):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def holds(condition: dict, where: str) -> bool:
    kind = condition["Type"]
    if kind in _COMPARE:
        left, right = _number_or_text(condition["LeftValue"]), _number_or_text(condition["RightValue"])
        try:
            return bool(_COMPARE[kind](left, right))
        except TypeError:
            raise StepFailed(f"{where}: cannot compare {left!r} {kind} {right!r}") from None
    if kind == "In":
        query = _number_or_text(condition["QueryValue"])
        return query in [_number_or_text(v) for v in condition.get("Values", [])]
    if kind == "Not":
        return not holds(condition["Expression"], where)
    return any(holds(inner, where) for inner in condition.get("Conditions", []))  # Or


def run(ctx: StepContext) -> StepOutcome:
    outcome = all(holds(c, ctx.step.where) for c in ctx.arguments.get("Conditions", []))
    branches = ctx.step.raw.get("Arguments", {})
    skipped = branches.get("ElseSteps" if outcome else "IfSteps", [])
    ctx.log(f"  {ctx.step.where}: {'true' if outcome else 'false'}")
    return StepOutcome(
        {"Outcome": outcome},
        {"Outcome": outcome, "Conditions": ctx.arguments.get("Conditions", [])},
        skip=tuple(s["Name"] for s in skipped),
    )


KIND = StepKind("Condition", check, run, properties=("Outcome",))
