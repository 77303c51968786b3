"""Template structure: the checks CloudFormation makes and moto does not, before any AWS call.

Known sections, every Ref / GetAtt / Sub / DependsOn target, conditions and mappings named,
no circular dependency (graphlib), CloudFormation's API limits.
"""

from __future__ import annotations

import graphlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from gitops.errors import TemplateError

# CloudFormation API limits checked up front (a body above 51,200 bytes must go through S3).
TEMPLATE_BODY_LIMIT = 51_200
TEMPLATE_URL_LIMIT = 1_048_576
MAX_RESOURCES, MAX_PARAMETERS, MAX_OUTPUTS = 500, 200, 200

PSEUDO_PARAMETERS = frozenset(
    {
        "AWS::AccountId",
        "AWS::NotificationARNs",
        "AWS::NoValue",
        "AWS::Partition",
        "AWS::Region",
        "AWS::StackId",
        "AWS::StackName",
        "AWS::URLSuffix",
    }
)
TEMPLATE_SECTIONS = frozenset(
    {
        "AWSTemplateFormatVersion",
        "Description",
        "Metadata",
        "Parameters",
        "Rules",
        "Mappings",
        "Conditions",
        "Transform",
        "Resources",
        "Outputs",
    }
)
_LOGICAL_ID = re.compile(r"^[A-Za-z0-9]{1,255}$")
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


@dataclass(frozen=True)
class Reference:
    kind: str  # Ref | Fn::GetAtt | Fn::Sub
    target: str
    attribute: str | None = None


def template_references(node: Any) -> Iterator[Reference]:
    """Every Ref, Fn::GetAtt and Fn::Sub variable in node (Fn::Sub's own variables excluded)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                yield Reference("Ref", value)
            elif key == "Fn::GetAtt":
                if isinstance(value, str):
                    head, _, attr = value.partition(".")
                    yield Reference("Fn::GetAtt", head, attr or None)
                elif isinstance(value, list) and value and isinstance(value[0], str):
                    att = value[1] if len(value) > 1 and isinstance(value[1], str) else None
                    yield Reference("Fn::GetAtt", value[0], att)
                    yield from template_references(value[1:])
            elif key == "Fn::Sub":
                text, local = (value, {}) if isinstance(value, str) else (value + [None, None])[:2]
                local = local if isinstance(local, dict) else {}
                if isinstance(text, str):
                    for var in _SUB_VARIABLE.findall(text):
                        if var.startswith("!"):
                            continue  # ${!Literal}
                        head, _, attr = var.partition(".")
                        if head not in local:
                            yield Reference("Fn::Sub", head, attr or None)
                yield from template_references(local)
            else:
                yield from template_references(value)
    elif isinstance(node, list):
        for item in node:
            yield from template_references(item)


def function_uses(node: Any, function: str) -> Iterator[Any]:
    """The arguments of every use of an intrinsic function (e.g. Fn::If) in node."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == function:
                yield value
            yield from function_uses(value, function)
    elif isinstance(node, list):
        for item in node:
            yield from function_uses(item, function)


def depends_on(resource: dict) -> list[str]:
    value = resource.get("DependsOn", [])
    return [value] if isinstance(value, str) else list(value)


def resource_body(resource: dict) -> dict:
    """The parts of a resource that CloudFormation resolves (Metadata and DependsOn are not references)."""
    return {k: v for k, v in resource.items() if k not in ("Type", "Metadata", "DependsOn", "Condition")}


def validate_template(template: Any, shown: str) -> None:
    """Structural checks CloudFormation performs and moto does not; raise TemplateError naming the item.

    Known sections only; every Ref / GetAtt / Sub / DependsOn target exists (a resource, parameter or
    pseudo parameter as the function allows); every condition named exists; Conditions and Rules refer
    only to parameters; Fn::FindInMap names a mapping; no circular dependency; API limits.
    """
    if not isinstance(template, dict):
        raise TemplateError(f"{shown}: a template must be a JSON object")
    unknown = sorted(set(template) - TEMPLATE_SECTIONS)
    if unknown:
        raise TemplateError(f"{shown}: unknown top-level section '{unknown[0]}'")
    resources = template.get("Resources")
    if not isinstance(resources, dict) or not resources:
        raise TemplateError(f"{shown}: the template defines no Resources")
    parameters = template.get("Parameters") or {}
    conditions = template.get("Conditions") or {}
    mappings = template.get("Mappings") or {}
    outputs = template.get("Outputs") or {}
    for section, items, limit in (
        ("Resources", resources, MAX_RESOURCES),
        ("Parameters", parameters, MAX_PARAMETERS),
        ("Outputs", outputs, MAX_OUTPUTS),
    ):
        if len(items) > limit:
            raise TemplateError(f"{shown}: {len(items)} {section}; CloudFormation allows at most {limit}")
        for name in items:
            if not _LOGICAL_ID.match(name):
                raise TemplateError(f"{shown}: {section} name '{name}' must be alphanumeric")
    overlap = sorted(set(resources) & set(parameters))
    if overlap:
        raise TemplateError(f"{shown}: '{overlap[0]}' is both a parameter and a resource")

    values = set(parameters) | PSEUDO_PARAMETERS

    def check_refs(where: str, node: Any, allow_resources: bool) -> set[str]:
        targets: set[str] = set()
        for ref in template_references(node):
            if ref.kind == "Fn::GetAtt" or (ref.kind == "Fn::Sub" and ref.attribute):
                ok = allow_resources and ref.target in resources
                what = "a resource"
            else:
                ok = ref.target in values or (allow_resources and ref.target in resources)
                what = "a resource, parameter or pseudo parameter" if allow_resources else "a parameter"
            if not ok:
                shown_ref = f"{ref.target}.{ref.attribute}" if ref.attribute else ref.target
                raise TemplateError(f"{shown}: {where} refers to '{shown_ref}' ({ref.kind}), which is not {what}")
            if ref.target in resources:
                targets.add(ref.target)
        for args in function_uses(node, "Fn::If"):
            name = args[0] if isinstance(args, list) and args else None
            if not isinstance(name, str) or name not in conditions:
                raise TemplateError(f"{shown}: {where} uses Fn::If with unknown condition '{name}'")
        for args in function_uses(node, "Fn::FindInMap"):
            name = args[0] if isinstance(args, list) and args else None
            if isinstance(name, str) and name not in mappings:
                raise TemplateError(f"{shown}: {where} uses Fn::FindInMap with unknown mapping '{name}'")
        return targets

    for name, condition in conditions.items():
        check_refs(f"condition '{name}'", condition, allow_resources=False)
        for used in function_uses(condition, "Condition"):
            if isinstance(used, str) and used not in conditions:
                raise TemplateError(f"{shown}: condition '{name}' refers to unknown condition '{used}'")
    for name, rule in (template.get("Rules") or {}).items():
        check_refs(f"rule '{name}'", rule, allow_resources=False)

    edges: dict[str, set[str]] = {}
    for lid, resource in resources.items():
        if not isinstance(resource, dict) or not isinstance(resource.get("Type"), str) or "::" not in resource["Type"]:
            raise TemplateError(f"{shown}: resource '{lid}' has no valid Type")
        condition = resource.get("Condition")
        if condition is not None and condition not in conditions:
            raise TemplateError(f"{shown}: resource '{lid}' has unknown condition '{condition}'")
        edges[lid] = check_refs(f"resource '{lid}'", resource_body(resource), allow_resources=True)
        for dep in depends_on(resource):
            if dep == lid:
                raise TemplateError(f"{shown}: resource '{lid}' depends on itself")
            if dep not in resources:
                raise TemplateError(f"{shown}: resource '{lid}' DependsOn unknown resource '{dep}'")
            edges[lid].add(dep)
        if lid in edges[lid]:
            raise TemplateError(f"{shown}: resource '{lid}' refers to itself")
    _check_acyclic(edges, shown)

    exports: set[str] = set()
    for name, output in outputs.items():
        if not isinstance(output, dict) or "Value" not in output:
            raise TemplateError(f"{shown}: output '{name}' has no Value")
        condition = output.get("Condition")
        if condition is not None and condition not in conditions:
            raise TemplateError(f"{shown}: output '{name}' has unknown condition '{condition}'")
        check_refs(f"output '{name}'", {k: v for k, v in output.items() if k != "Condition"}, allow_resources=True)
        export = (output.get("Export") or {}).get("Name")
        if isinstance(export, str):
            if export in exports:
                raise TemplateError(f"{shown}: export name '{export}' is used by two outputs")
            exports.add(export)
    size = len(compact_json(template))
    if size > TEMPLATE_URL_LIMIT:
        raise TemplateError(f"{shown}: {size} bytes; CloudFormation accepts templates up to {TEMPLATE_URL_LIMIT}")


def _check_acyclic(edges: dict[str, set[str]], shown: str) -> None:
    try:
        graphlib.TopologicalSorter({node: sorted(deps) for node, deps in sorted(edges.items())}).prepare()
    except graphlib.CycleError as exc:
        cycle = " -> ".join(reversed(exc.args[1]))
        raise TemplateError(f"{shown}: circular dependency between resources: {cycle}") from exc


def compact_json(data: Any) -> bytes:
    """What is sent to AWS: sorted keys, no whitespace (templates and definitions well under the limits)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
