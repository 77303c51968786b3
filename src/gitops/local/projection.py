"""The embedded target's projection of a template: the part moto's CloudFormation can create, and what it leaves out.

moto implements a subset of CloudFormation's resource types (and of their Fn::GetAtt attributes).
Deploy on the embedded target sends each template's projection; verify and status report what was
left out, per resource, with the reason, as "not checked here".
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

from gitops.deploy.templates import depends_on, function_uses, resource_body, template_references
from gitops.files import atomic_write


@dataclass
class DroppedResource:
    """A resource (or output) left out of the embedded projection, and why."""

    logical_id: str
    type: str
    reason: str


_CUSTOM_REASON = "custom resource: its Lambda provider does not run on the embedded target"
_IMPORT_REASON = "uses Fn::ImportValue: moto publishes no exports for stacks deployed by change set"
EMBEDDED_PLACEHOLDER = "GitopsEmbeddedPlaceholder"


@lru_cache(maxsize=1)
def _moto_models() -> dict[str, Any]:
    """CloudFormation types moto can create, with the model class that answers Fn::GetAtt."""
    from moto.cloudformation.parsing import get_model_map

    return {
        name: model
        for name, model in get_model_map().items()
        if re.fullmatch(r"AWS::\w+::\w+", name) and name != "AWS::SERVICE::RESOURCE"
    }


class MotoCapabilities:
    """Which CloudFormation types, and which of their Fn::GetAtt attributes, the embedded moto creates.

    Importing moto's CloudFormation models takes seconds, and every deploy and verify on the
    embedded target asks; the answers are kept per moto version in the local target's directory.
    """

    def __init__(self, cache_dir: Path | None = None) -> None:
        self.path = cache_dir / f"moto-capabilities-{version('moto')}.json" if cache_dir else None
        self.types: set[str] | None = None
        self.attrs: dict[str, bool] = {}
        self._dirty = False
        if self.path and self.path.exists():
            try:
                data = json.loads(self.path.read_text())
                self.types, self.attrs = set(data["types"]), dict(data["attrs"])
            except (ValueError, KeyError, TypeError):
                self.types, self.attrs = None, {}

    def supports(self, rtype: str) -> bool:
        if self.types is None:
            self.types, self._dirty = set(_moto_models()), True
        return rtype in self.types

    def has_attr(self, rtype: str, attribute: str) -> bool:
        key = f"{rtype}.{attribute}"
        if key not in self.attrs:
            model = _moto_models().get(rtype)
            self.attrs[key], self._dirty = bool(model is not None and model.has_cfn_attr(attribute)), True
        return self.attrs[key]

    def save(self) -> None:
        if not (self.path and self._dirty and self.types is not None):
            return
        atomic_write(self.path, json.dumps({"types": sorted(self.types), "attrs": self.attrs}, sort_keys=True))
        self._dirty = False


# moto bugs in types it does support, worked around by leaving one property out (and saying so).
EMBEDDED_PROPERTY_GAPS: dict[tuple[str, str], str] = {
    ("AWS::KMS::Key", "Tags"): "moto's KMS model misreads CloudFormation tags (KeyError 'TagKey')",
    ("AWS::SSM::Parameter", "Tags"): "moto's SSM model takes a tag list where CloudFormation gives a map",
}


@dataclass
class Projection:
    """What the embedded target deploys of a template, and exactly what it leaves out."""

    template: dict
    dropped: list[DroppedResource] = field(default_factory=list)
    detached: dict[str, list[str]] = field(default_factory=dict)  # DependsOn entries removed, per resource
    adjusted: list[str] = field(default_factory=list)  # properties left out of kept resources


def embedded_projection(template: dict, capabilities: MotoCapabilities | None = None) -> Projection:
    """The part of a (validated) template moto can deploy.

    Drops resources of types moto cannot create, custom resources, and (transitively) every resource
    that refers to a dropped one or to an attribute moto cannot resolve; outputs referring to dropped
    resources go too. A DependsOn on a dropped resource is removed (ordering only), and a property
    moto mishandles (EMBEDDED_PROPERTY_GAPS) is left out; both are reported.
    """
    caps = capabilities or MotoCapabilities()
    resources: dict[str, dict] = template["Resources"]
    dropped: dict[str, DroppedResource] = {}
    for lid, resource in resources.items():
        rtype = resource["Type"]
        if rtype.startswith("Custom::") or rtype == "AWS::CloudFormation::CustomResource":
            dropped[lid] = DroppedResource(lid, rtype, _CUSTOM_REASON)
        elif not caps.supports(rtype):
            dropped[lid] = DroppedResource(lid, rtype, "type not supported by moto's CloudFormation")
    changed = True
    while changed:
        changed = False
        for lid, resource in resources.items():
            if lid in dropped:
                continue
            reason = _projection_reason(resource_body(resource), resources, dropped, caps)
            if reason:
                dropped[lid] = DroppedResource(lid, resource["Type"], reason)
                changed = True

    projected = copy.deepcopy(template)
    kept = {lid: res for lid, res in projected["Resources"].items() if lid not in dropped}
    detached: dict[str, list[str]] = {}
    adjusted: list[str] = []
    for lid, resource in kept.items():
        properties = resource.get("Properties") or {}
        for (rtype, prop), why in EMBEDDED_PROPERTY_GAPS.items():
            if resource["Type"] == rtype and prop in properties:
                del properties[prop]
                adjusted.append(f"{lid} ({rtype}): {prop} left out: {why}")
        deps = depends_on(resource)
        gone = [d for d in deps if d in dropped]
        if gone:
            detached[lid] = gone
            rest = [d for d in deps if d not in dropped]
            if rest:
                resource["DependsOn"] = rest
            else:
                resource.pop("DependsOn")
    if not kept:
        # CloudFormation needs one resource; a wait-condition handle creates nothing.
        kept[EMBEDDED_PLACEHOLDER] = {"Type": "AWS::CloudFormation::WaitConditionHandle"}
    projected["Resources"] = kept
    dropped_list = [dropped[lid] for lid in resources if lid in dropped]
    outputs = projected.get("Outputs") or {}
    for name in list(outputs):
        reason = _projection_reason(outputs[name], resources, dropped, caps)
        if reason:
            del outputs[name]
            dropped_list.append(DroppedResource(f"Outputs.{name}", "Output", reason))
    if "Outputs" in projected and not outputs:
        del projected["Outputs"]
    return Projection(projected, dropped_list, detached, adjusted)


def _projection_reason(
    body: Any, resources: dict[str, dict], dropped: dict[str, DroppedResource], caps: MotoCapabilities
) -> str | None:
    for ref in template_references(body):
        if ref.target in dropped:
            return f"refers to dropped {ref.target} ({ref.kind})"
        if ref.attribute and ref.target in resources:
            rtype = resources[ref.target]["Type"]
            if caps.supports(rtype) and not caps.has_attr(rtype, ref.attribute):
                return f"moto cannot resolve {ref.target}.{ref.attribute}"
    if any(True for _ in function_uses(body, "Fn::ImportValue")):
        return _IMPORT_REASON
    return None
