"""The order stacks deploy in: after the stacks they depend on, as the release records and as they read.

Render records each stack's dependencies from the CDK cloud assembly (its `depends_on`, in the
stack's assets file). A stack must also come after every stack whose export or SSM parameter it
reads, whether or not the app declared it; graphlib orders them, alphabetically among equals, and
a cycle is a TemplateError: no order could deploy it.
"""

from __future__ import annotations

import graphlib
import json
import re

from gitops.deploy.templates import function_uses
from gitops.errors import TemplateError

_SSM_DYNAMIC_REF = re.compile(r"\{\{resolve:ssm(?:-secure)?:([^}:]+)(?::\d+)?\}\}")


def _ssm_parameters_produced(template: dict) -> set[str]:
    names = set()
    for resource in template.get("Resources", {}).values():
        name = (resource.get("Properties") or {}).get("Name")
        if resource.get("Type") == "AWS::SSM::Parameter" and isinstance(name, str):
            names.add(name)
    return names


def _ssm_parameters_consumed(template: dict) -> set[str]:
    names = set()
    for spec in (template.get("Parameters") or {}).values():
        if str(spec.get("Type", "")).startswith("AWS::SSM::Parameter::Value") and isinstance(spec.get("Default"), str):
            names.add(spec["Default"])
    names.update(_SSM_DYNAMIC_REF.findall(json.dumps(template.get("Resources", {}))))
    return names


def _exports(template: dict) -> set[str]:
    return {
        o["Export"]["Name"]
        for o in (template.get("Outputs") or {}).values()
        if isinstance((o.get("Export") or {}).get("Name"), str)
    }


def reads_between(templates: dict[str, dict]) -> dict[str, set[str]]:
    """For each stack, the other stacks whose exports or SSM parameters it reads."""
    produced = {name: _ssm_parameters_produced(t) | _exports(t) for name, t in templates.items()}
    needs: dict[str, set[str]] = {}
    for name, template in templates.items():
        wanted = _ssm_parameters_consumed(template)
        wanted |= {v for v in function_uses(template, "Fn::ImportValue") if isinstance(v, str)}
        needs[name] = {other for other in templates if other != name and produced[other] & wanted}
    return needs


def stack_order(templates: dict[str, dict], declared: dict[str, list[str]] | None = None) -> list[str]:
    """Stacks in deploy order: each after those it depends on (declared) or reads from; ties alphabetical."""
    needs = reads_between(templates)
    for name, deps in (declared or {}).items():
        needs.setdefault(name, set()).update(deps)
    sorter = graphlib.TopologicalSorter({name: sorted(deps) for name, deps in sorted(needs.items())})
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle = sorted(set(exc.args[1]))
        raise TemplateError(
            f"stacks {', '.join(cycle)} depend on or read each other's exports or SSM parameters (a cycle)"
        ) from exc
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        order += ready
        sorter.done(*ready)
    return order
