"""What an execution will run, checked before any step starts: kinds, references, parameters and order."""

from __future__ import annotations

import graphlib
from dataclasses import dataclass
from typing import Any

from gitops.local.executor.errors import BrokenWiring, ExecutorError
from gitops.local.executor.expressions import property_path, referenced_steps, references
from gitops.local.executor.registry import DefinitionStep, StepKind
from gitops.local.executor.steps import STEP_KINDS

BRANCHES = ("IfSteps", "ElseSteps")
_PARAMETER_TYPES = {"String": str, "Integer": int, "Float": float, "Boolean": bool}


@dataclass(frozen=True)
class ExecutionPlan:
    steps: dict[str, DefinitionStep]
    kinds: dict[str, StepKind]
    depends_on: dict[str, set[str]]  # step -> the steps it waits for (data, DependsOn, its condition)
    parameters: dict[str, Any]


def _flatten(items: list[dict], parent: str | None, branch: str | None, where: str) -> list[DefinitionStep]:
    found = []
    for raw in items:
        if not isinstance(raw, dict) or not isinstance(raw.get("Name"), str) or not isinstance(raw.get("Type"), str):
            raise ExecutorError(f"{where}: a step without a Name and Type: {str(raw)[:80]}")
        arguments = dict(raw.get("Arguments") or {})
        nested = {key: arguments.pop(key) for key in BRANCHES if key in arguments} if raw["Type"] == "Condition" else {}
        found.append(DefinitionStep(raw["Name"], raw["Type"], arguments, raw, parent, branch))
        for key, inner in nested.items():
            found.extend(_flatten(inner or [], raw["Name"], key, where))
    return found


def parameter_values(definition: dict, given: dict[str, str], where: str) -> dict[str, Any]:
    """Defaults, overridden by the values given at start (typed as the definition declares them)."""
    values: dict[str, Any] = {}
    declared = {p["Name"]: p for p in definition.get("Parameters", [])}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ExecutorError(f"{where}: no parameter {', '.join(unknown)} (have {', '.join(declared) or 'none'})")
    for name, spec in declared.items():
        kind = _PARAMETER_TYPES.get(spec.get("Type", "String"), str)
        if name in given:
            raw = given[name]
            try:
                value: Any = raw.lower() == "true" if kind is bool else kind(raw)
            except ValueError:
                raise ExecutorError(f"{where}: parameter {name}={raw!r} is not a {spec.get('Type')}") from None
        elif "DefaultValue" in spec:
            value = spec["DefaultValue"]
        else:
            raise ExecutorError(f"{where}: parameter {name} has no default; give it a value")
        if spec.get("EnumValues") and value not in spec["EnumValues"]:
            raise ExecutorError(f"{where}: parameter {name}={value!r} is not one of {', '.join(spec['EnumValues'])}")
        values[name] = value
    return values


def plan_execution(definition: dict, given: dict[str, str], where: str) -> ExecutionPlan:
    """Refuses the whole definition (nothing runs) on an unsupported step or a reference that cannot resolve."""
    if not isinstance(definition.get("Steps"), list) or not definition["Steps"]:
        raise ExecutorError(f"{where}: the definition has no Steps")
    flat = _flatten(definition["Steps"], None, None, where)
    steps: dict[str, DefinitionStep] = {}
    for step in flat:
        if step.name in steps:
            raise BrokenWiring(f"{where}: two steps are named {step.name!r}")
        steps[step.name] = step
    kinds = {}
    for step in flat:
        try:
            kinds[step.name] = STEP_KINDS.find(step)
            kinds[step.name].check(step)
        except ExecutorError as exc:
            raise type(exc)(f"{where}: {exc}") from None
    parameters = parameter_values(definition, given, where)

    depends_on: dict[str, set[str]] = {}
    for step in flat:
        at = f"{where}: {step.where}"
        for ref in references(step.arguments):
            head, _, rest = ref.partition(".")
            if head == "Parameters" and rest not in parameters:
                raise BrokenWiring(f"{at}: {ref}: no such parameter (have {', '.join(parameters) or 'none'})")
            if head == "Steps":
                _check_step_reference(ref, steps, kinds, at)
        explicit = step.raw.get("DependsOn") or []
        missing = [name for name in explicit if name not in steps]
        if missing:
            raise BrokenWiring(f"{at}: DependsOn names no step {', '.join(missing)}")
        depends_on[step.name] = (
            referenced_steps(step.arguments) | set(explicit) | ({step.parent} if step.parent else set())
        )
    try:
        graphlib.TopologicalSorter(depends_on).prepare()
    except graphlib.CycleError as exc:
        raise BrokenWiring(f"{where}: steps depend on each other in a cycle: {' -> '.join(exc.args[1])}") from None
    return ExecutionPlan(steps, kinds, depends_on, parameters)


def _check_step_reference(ref: str, steps: dict[str, DefinitionStep], kinds: dict[str, StepKind], at: str) -> None:
    _, name, *rest = ref.split(".", 2)
    if name not in steps:
        raise BrokenWiring(f"{at}: {ref}: no step {name!r} in the definition")
    tokens = property_path(rest[0], at) if rest else []
    if not tokens:
        raise BrokenWiring(f"{at}: {ref}: names a step, not one of its properties")
    provided = kinds[name].properties
    if tokens[0] not in provided:
        raise BrokenWiring(f"{at}: {ref}: a {steps[name].type} step has no property {tokens[0]!r}")
    target = steps[name]
    if tokens[0] == "PropertyFiles":
        declared = [f.get("PropertyFileName") for f in target.raw.get("PropertyFiles", [])]
        if len(tokens) < 2 or tokens[1] not in declared:
            raise BrokenWiring(f"{at}: {ref}: step {name!r} declares no such property file (has {declared})")
    if tokens[:2] == ["ProcessingOutputConfig", "Outputs"] and len(tokens) > 2 and isinstance(tokens[2], str):
        outputs = [o.get("OutputName") for o in target.arguments.get("ProcessingOutputConfig", {}).get("Outputs", [])]
        if tokens[2] not in outputs:
            raise BrokenWiring(f"{at}: {ref}: step {name!r} has no output {tokens[2]!r} (has {', '.join(outputs)})")
