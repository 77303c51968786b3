"""`gitops deploy`: put one stage of a release into its account: assets, stacks by change set, pipelines.

One code path for real AWS and the embedded moto server. Everything that can be checked without
AWS (the release, the stage, every template's structure, parameters) is checked before the first
call; the first call proves the credentials belong to the stage's account. On the embedded target
each template is deployed as its moto-supported projection, and what was left out is reported.
"""

from __future__ import annotations

import copy
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from gitops.config import StageConfig, kms_alias_arn
from gitops.errors import GitopsError, aws_error_text
from gitops.files import atomic_write
from gitops.progress import Progress
from gitops.release.assets import sha256_bytes
from gitops.release.manifest import ReleaseManifest, check_stage_summary, load_release, load_stage_config_from_release
from gitops.release.pipelines import canonical_json
from gitops.scan.attestation import require_gate
from gitops.target import Target

# The engine's own names: the model the Inference stack serves, the tags it puts on what it upserts.
MODEL_PACKAGE_PARAMETER = "ModelPackageArn"
RELEASE_TAG = "gitops:release-id"
STAGE_TAG = "gitops:stage"
SHA256_METADATA = "sha256"  # S3 object metadata: the content hash that lets a re-upload be skipped

# CloudFormation API limits checked up front (a body above 51,200 bytes must go through S3).
TEMPLATE_BODY_LIMIT = 51_200
TEMPLATE_URL_LIMIT = 1_048_576
MAX_RESOURCES, MAX_PARAMETERS, MAX_OUTPUTS = 500, 200, 200
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]

# Stacks with no reference between them deploy in this order (then alphabetically).
PREFERRED_ORDER = ("Base", "Network", "MLOps", "Inference", "App")

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
_SSM_DYNAMIC_REF = re.compile(r"\{\{resolve:ssm(?:-secure)?:([^}:]+)(?::\d+)?\}\}")
_BOOTSTRAP_PARAMETER = re.compile(r"^/cdk-bootstrap/([A-Za-z0-9_-]+)/version$")

_OK_STACK_STATES = ("CREATE_COMPLETE", "UPDATE_COMPLETE")
# A stack in one of these holds no resources: it is deleted and created afresh.
_EMPTY_STACK_STATES = ("REVIEW_IN_PROGRESS", "ROLLBACK_COMPLETE")
# States in which a stack (and so the role the first stack creates) exists and can be used.
_USABLE_STACK_STATES = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE")
_NO_CHANGES = ("didn't contain changes", "No updates are to be performed")


class DeployError(GitopsError):
    """A stage cannot be deployed: wrong account, missing bootstrap, bad release input."""

    hint = "fix the named input (or credentials) and re-run `gitops deploy`; nothing was changed after the failing step"


class TemplateError(DeployError):
    """A template CloudFormation would reject (moto would not): found before any AWS call."""

    hint = "fix the named resource under infra/ and re-render the release"


class DeployFailed(DeployError):
    """A deploy started and stopped at a failing step (the report says which and why)."""

    hint = "read the stack's events in the CloudFormation console; fix and re-run `gitops deploy` (it converges)"


# ---------------------------------------------------------------- report


@dataclass
class DroppedResource:
    """A resource (or output) left out of the embedded projection, and why."""

    logical_id: str
    type: str
    reason: str


@dataclass
class StackResult:
    name: str
    stack_name: str
    action: str  # created | updated | unchanged | failed
    seconds: float = 0.0
    changes: int = 0
    reason: str | None = None
    note: str | None = None
    # Embedded target only: what its projection of the template left out (see embedded_projection).
    dropped: list[DroppedResource] = field(default_factory=list)
    detached_depends_on: dict[str, list[str]] = field(default_factory=dict)
    adjusted: list[str] = field(default_factory=list)


@dataclass
class PipelineResult:
    name: str
    pipeline_name: str
    action: str  # created | updated | unchanged
    sha256: str


@dataclass
class DeployReport:
    release_id: str
    stage: str
    account: str
    region: str
    target: str
    ok: bool = True
    error: str | None = None
    stacks: list[StackResult] = field(default_factory=list)
    pipelines: list[PipelineResult] = field(default_factory=list)
    assets_uploaded: list[str] = field(default_factory=list)
    assets_skipped: list[str] = field(default_factory=list)
    model_package_group: str | None = None  # "<name>: exists" | "<name>: created (outside CloudFormation)"
    model_package_arn: str | None = None
    embedded_bootstrap: list[str] = field(default_factory=list)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def dropped_counts(self) -> dict[str, int]:
        """Resources left out on the embedded target, counted per type."""
        counts: dict[str, int] = {}
        for stack in self.stacks:
            for item in stack.dropped:
                counts[item.type] = counts.get(item.type, 0) + 1
        return dict(sorted(counts.items()))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"dropped_counts": self.dropped_counts}

    def raise_for_failure(self) -> None:
        if not self.ok:
            raise DeployFailed(f"deploy of stage '{self.stage}' failed: {self.error}")


# ---------------------------------------------------------------- template structure


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


def _function_uses(node: Any, function: str) -> Iterator[Any]:
    """The arguments of every use of an intrinsic function (e.g. Fn::If) in node."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == function:
                yield value
            yield from _function_uses(value, function)
    elif isinstance(node, list):
        for item in node:
            yield from _function_uses(item, function)


def _depends_on(resource: dict) -> list[str]:
    value = resource.get("DependsOn", [])
    return [value] if isinstance(value, str) else list(value)


def _resource_body(resource: dict) -> dict:
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
        for args in _function_uses(node, "Fn::If"):
            name = args[0] if isinstance(args, list) and args else None
            if not isinstance(name, str) or name not in conditions:
                raise TemplateError(f"{shown}: {where} uses Fn::If with unknown condition '{name}'")
        for args in _function_uses(node, "Fn::FindInMap"):
            name = args[0] if isinstance(args, list) and args else None
            if isinstance(name, str) and name not in mappings:
                raise TemplateError(f"{shown}: {where} uses Fn::FindInMap with unknown mapping '{name}'")
        return targets

    for name, condition in conditions.items():
        check_refs(f"condition '{name}'", condition, allow_resources=False)
        for used in _function_uses(condition, "Condition"):
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
        edges[lid] = check_refs(f"resource '{lid}'", _resource_body(resource), allow_resources=True)
        for dep in _depends_on(resource):
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
    state: dict[str, int] = {}
    for start in sorted(edges):
        if state.get(start):
            continue
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(edges[start])))]
        trail = [start]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
                trail.pop()
            elif state.get(child) == 1:
                cycle = " -> ".join(trail[trail.index(child) :] + [child])
                raise TemplateError(f"{shown}: circular dependency between resources: {cycle}")
            elif not state.get(child):
                state[child] = 1
                trail.append(child)
                stack.append((child, iter(sorted(edges[child]))))


def compact_json(data: Any) -> bytes:
    """What is sent to AWS: sorted keys, no whitespace (templates and definitions well under the limits)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# ---------------------------------------------------------------- stack order


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


def stack_order(templates: dict[str, dict]) -> list[str]:
    """Stacks in deploy order: a stack after every stack whose export or SSM parameter it reads.

    Stacks with no such link between them keep PREFERRED_ORDER (then alphabetical). A cycle is a
    TemplateError: no order could deploy it.
    """
    produced = {name: _ssm_parameters_produced(t) | _exports(t) for name, t in templates.items()}
    needs: dict[str, set[str]] = {}
    for name, template in templates.items():
        wanted = _ssm_parameters_consumed(template)
        wanted |= {v for v in _function_uses(template, "Fn::ImportValue") if isinstance(v, str)}
        needs[name] = {other for other in templates if other != name and produced[other] & wanted}

    def rank(name: str) -> tuple[int, str]:
        return (PREFERRED_ORDER.index(name) if name in PREFERRED_ORDER else len(PREFERRED_ORDER), name)

    order: list[str] = []
    while len(order) < len(templates):
        ready = [n for n in templates if n not in order and needs[n] <= set(order)]
        if not ready:
            left = sorted(set(templates) - set(order))
            raise TemplateError(f"stacks {', '.join(left)} read each other's exports or SSM parameters (a cycle)")
        order.append(min(ready, key=rank))
    return order


# ---------------------------------------------------------------- embedded projection


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
        from importlib.metadata import version

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
            reason = _projection_reason(_resource_body(resource), resources, dropped, caps)
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
        deps = _depends_on(resource)
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
    if any(True for _ in _function_uses(body, "Fn::ImportValue")):
        return _IMPORT_REASON
    return None


# ---------------------------------------------------------------- the plan: everything read from the release


@dataclass
class StackPlan:
    name: str
    stack_name: str
    path: str  # release-relative, for messages
    template: dict  # the full template, as rendered
    deployed: dict  # what CloudFormation receives: the full template on AWS, its projection on the embedded target
    projection: Projection | None  # the embedded target's record of what it left out
    file_assets: list[dict]

    @property
    def parameters(self) -> dict[str, dict]:
        return self.deployed.get("Parameters") or {}


@dataclass
class PipelinePlan:
    name: str
    pipeline_name: str
    path: str
    definition: dict
    sha256: str
    assets: list[str]  # release paths of the step code it refers to


@dataclass
class StagePlan:
    release_dir: Path
    manifest: ReleaseManifest
    config: StageConfig
    stacks: list[StackPlan]
    pipelines: list[PipelinePlan]

    @property
    def bootstrap_qualifiers(self) -> list[str]:
        found = set()
        for stack in self.stacks:
            for spec in stack.parameters.values():
                match = _BOOTSTRAP_PARAMETER.match(str(spec.get("Default", "")))
                if match and str(spec.get("Type", "")).startswith("AWS::SSM::Parameter::Value"):
                    found.add(match.group(1))
        return sorted(found)


def rel_path(stage: str, stack: str) -> str:
    """A stack's template inside the release."""
    return f"stages/{stage}/templates/{stack}.template.json"


def _read_json(release_dir: Path, rel: str) -> Any:
    try:
        return json.loads((release_dir / rel).read_bytes())
    except FileNotFoundError as exc:
        raise DeployError(f"{release_dir / rel}: missing from the release") from exc
    except json.JSONDecodeError as exc:
        raise DeployError(f"{release_dir / rel}: not valid JSON (line {exc.lineno}: {exc.msg})") from exc


def plan_stage(release_dir: Path, stage: str, target: Target) -> StagePlan:
    """Read and check everything deploy and verify need from the release; makes no AWS call."""
    release_dir = Path(release_dir)
    manifest = load_release(release_dir)
    summary = manifest.stages.get(stage)
    if summary is None:
        have = ", ".join(sorted(manifest.stages)) or "none"
        raise DeployError(f"{release_dir}: release {manifest.short_id} has no stage '{stage}' (has {have})")
    check_stage_summary(release_dir, manifest, stage)  # the summary is not hashed: the files must bear it out
    config = load_stage_config_from_release(release_dir, stage)
    if (config.account, config.region) != (summary.account, summary.region):
        raise DeployError(
            f"{release_dir}: stage '{stage}' settings say {config.account}/{config.region},"
            f" the manifest says {summary.account}/{summary.region}"
        )
    templates: dict[str, dict] = {}
    assets_of: dict[str, list[dict]] = {}
    for name, stack in summary.stacks.items():
        rel = rel_path(stage, name)
        template = _read_json(release_dir, rel)
        validate_template(template, rel)
        for pname, spec in (template.get("Parameters") or {}).items():
            if pname != MODEL_PACKAGE_PARAMETER and "Default" not in spec:
                raise TemplateError(f"{rel}: parameter '{pname}' has no Default and deploy supplies no value for it")
        templates[name] = template
        assets_doc = _read_json(release_dir, f"stages/{stage}/templates/{name}.assets.json")
        if assets_doc.get("stack_name") != stack.stack_name:
            raise DeployError(
                f"{release_dir}: {name}.assets.json names stack '{assets_doc.get('stack_name')}',"
                f" the manifest '{stack.stack_name}'"
            )
        assets_of[name] = list(assets_doc.get("files", []))
        for asset in assets_of[name]:
            if asset.get("release_path") not in manifest.files:
                raise DeployError(
                    f"{release_dir}: {name}.assets.json refers to {asset.get('release_path')},"
                    " which the release does not carry"
                )
    stacks = []
    capabilities = MotoCapabilities(target.local_dir) if target.is_local else None
    for name in stack_order(templates):
        template = templates[name]
        projection = embedded_projection(template, capabilities) if target.is_local else None
        if projection:
            validate_template(projection.template, f"{rel_path(stage, name)} (embedded projection)")
        stacks.append(
            StackPlan(
                name,
                summary.stacks[name].stack_name,
                rel_path(stage, name),
                template,
                projection.template if projection else template,
                projection,
                assets_of[name],
            )
        )
    asset_uri = re.compile(rf"s3://{re.escape(config.artifact_bucket_name)}/(assets/[0-9a-f]{{64}}/[^\"'\s]+)")
    pipelines = []
    for name, pipeline in summary.pipelines.items():
        rel = f"stages/{stage}/pipelines/{name}.json"
        definition = _read_json(release_dir, rel)
        referenced = sorted(set(asset_uri.findall(json.dumps(definition))))
        for path in referenced:
            if path not in manifest.files:
                raise DeployError(f"{release_dir / rel}: refers to s3://…/{path}, which the release does not carry")
        pipelines.append(
            PipelinePlan(
                name,
                pipeline.pipeline_name,
                rel,
                definition,
                manifest.files[rel],
                referenced,
            )
        )
    if capabilities:
        capabilities.save()
    return StagePlan(release_dir, manifest, config, stacks, pipelines)


# ---------------------------------------------------------------- shared AWS steps


def aws_errors() -> tuple[type[BaseException], ...]:
    """What a failing AWS call raises (moto sometimes answers in a form botocore cannot parse)."""
    from botocore.exceptions import BotoCoreError, ClientError
    from botocore.parsers import ResponseParserError

    return (ClientError, BotoCoreError, ResponseParserError)


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def check_account(sts: Any, config: StageConfig, verb: str = "deploy") -> str:
    """The credentials' account must be the stage's: a prod release never lands in the dev account."""
    try:
        identity = sts.get_caller_identity()
    except aws_errors() as exc:
        raise DeployError(
            f"stage '{config.stage}': cannot determine the AWS account ({aws_error_text(exc)})",
            hint="configure AWS credentials for the stage's account",
        ) from exc
    account = identity["Account"]
    if account != config.account:
        raise DeployError(
            f"refusing to {verb} stage '{config.stage}' (account {config.account}) with credentials of account"
            f" {account} ({identity.get('Arn', '?')})",
            hint=f"use credentials for account {config.account}, e.g. AWS_PROFILE of the {config.stage} account",
        )
    return account


def stack_status(cfn: Any, stack_name: str) -> dict | None:
    """The live stack (describe_stacks entry), or None when it does not exist."""
    from botocore.exceptions import ClientError

    try:
        return cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    except ClientError as exc:
        if "does not exist" in aws_error_text(exc):
            return None
        raise


class StageClients:
    """Clients of one stage session (in the stage's account), made on first use: aws.cfn, aws.s3, ..."""

    def __init__(self, target: Target, config: StageConfig) -> None:
        self.target = target
        self.config = config
        self.session = target.session(config)
        self._made: dict[str, Any] = {}

    def __getattr__(self, service: str) -> Any:
        if service.startswith("_"):
            raise AttributeError(service)
        name = {"cfn": "cloudformation"}.get(service, service)
        if name not in self._made:
            self._made[name] = self.target.client(self.config, name, self.session)
        return self._made[name]


def _poll(read: Callable[[], Any], done: Callable[[Any], bool], *, delay: float, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise DeployFailed(f"{what}: still not done after {int(timeout)}s")
        time.sleep(delay)


# ---------------------------------------------------------------- deploy


class _StageDeploy:
    def __init__(self, plan: StagePlan, target: Target, say: Progress, model_package_arn: str | None) -> None:
        self.plan = plan
        self.config = plan.config
        self.target = target
        self.say = say
        self.requested_arn = model_package_arn
        self.execution_role_arn: str | None = None
        self.model_arn: str | None = None
        self.aws = StageClients(target, plan.config)
        self.delay = 0.1 if target.is_local else 5.0
        self.report = DeployReport(
            plan.manifest.release_id, self.config.stage, self.config.account, self.config.region, target.kind
        )

    # -- bootstrap

    def require_bootstrap(self) -> None:
        """On AWS: `cdk bootstrap` must have run in the stage's account and region."""
        from botocore.exceptions import ClientError

        for qualifier in self.plan.bootstrap_qualifiers:
            name = f"/cdk-bootstrap/{qualifier}/version"
            try:
                version = self.aws.ssm.get_parameter(Name=name)["Parameter"]["Value"]
            except ClientError as exc:
                if _error_code(exc) != "ParameterNotFound":
                    raise DeployError(f"stage '{self.config.stage}': reading {name}: {aws_error_text(exc)}") from exc
                raise DeployError(
                    f"stage '{self.config.stage}': account {self.config.account} region {self.config.region} is not"
                    f" CDK-bootstrapped (SSM parameter {name} is missing)",
                    hint=f"run `cdk bootstrap aws://{self.config.account}/{self.config.region}` (or scripts/bootstrap)"
                    " once per account and region",
                ) from exc
            too_old = self._rejected_bootstrap_versions()
            if version in too_old:
                raise DeployError(
                    f"stage '{self.config.stage}': CDK bootstrap version {version} in account {self.config.account}"
                    " is too old for these templates",
                    hint="re-run `cdk bootstrap` (or scripts/bootstrap) to upgrade it",
                )

    def _rejected_bootstrap_versions(self) -> set[str]:
        """Versions the templates' CheckBootstrapVersion rule rejects (Fn::Contains lists of the rule)."""
        rejected: set[str] = set()
        for stack in self.plan.stacks:
            rule = (stack.template.get("Rules") or {}).get("CheckBootstrapVersion", {})
            for args in _function_uses(rule, "Fn::Contains"):
                if isinstance(args, list) and args and isinstance(args[0], list):
                    rejected.update(str(v) for v in args[0])
        return rejected

    # Embedded target only: there is no `cdk bootstrap` for a moto server, so deploy stands in for it.
    def embedded_bootstrap(self) -> None:
        rejected = {int(v) for v in self._rejected_bootstrap_versions() if str(v).isdigit()}
        version = str(max(rejected | {27}) + 1)
        for qualifier in self.plan.bootstrap_qualifiers or ["hnb659fds"]:
            name = f"/cdk-bootstrap/{qualifier}/version"
            self.aws.ssm.put_parameter(Name=name, Value=version, Type="String", Overwrite=True)
            bucket = self._bootstrap_bucket(qualifier)
            self._ensure_bucket(bucket)
            self.report.embedded_bootstrap += [f"ssm:{name}={version}", f"s3://{bucket}"]
        for stack in self.plan.stacks:
            for asset in stack.file_assets:
                self._ensure_bucket(self._asset_bucket(asset))

    def _ensure_bucket(self, bucket: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.aws.s3.head_bucket(Bucket=bucket)
        except ClientError:
            kwargs: dict[str, Any] = {}
            if self.config.region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.config.region}
            self.aws.s3.create_bucket(Bucket=bucket, **kwargs)

    def _bootstrap_bucket(self, qualifier: str) -> str:
        return f"cdk-{qualifier}-assets-{self.config.account}-{self.config.region}"

    def _asset_bucket(self, asset: dict) -> str:
        bucket = str(asset["bucket"])
        for placeholder, value in (
            ("${AWS::AccountId}", self.config.account),
            ("${AWS::Region}", self.config.region),
            ("${AWS::Partition}", "aws"),
        ):
            bucket = bucket.replace(placeholder, value)
        return bucket

    # -- assets

    def upload(self, bucket: str, key: str, release_path: str, *, encrypt: bool) -> None:
        from botocore.exceptions import ClientError

        data = (self.plan.release_dir / release_path).read_bytes()
        digest = sha256_bytes(data)
        uri = f"s3://{bucket}/{key}"
        try:
            try:
                head = self.aws.s3.head_object(Bucket=bucket, Key=key)
            except ClientError as exc:
                if _error_code(exc) not in ("404", "NoSuchKey", "NotFound"):
                    raise
                head = None
            if head is not None and head.get("Metadata", {}).get(SHA256_METADATA) == digest:
                self.report.assets_skipped.append(uri)
                return
            extra: dict[str, Any] = {"Metadata": {SHA256_METADATA: digest}}
            if encrypt:
                extra |= {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_alias_arn(self.config)}
            self.aws.s3.put_object(Bucket=bucket, Key=key, Body=data, **extra)
        except aws_errors() as exc:
            raise DeployFailed(f"uploading {release_path} to {uri}: {aws_error_text(exc)}") from exc
        self.report.assets_uploaded.append(uri)
        self.say(f"uploaded {uri}")

    def upload_stack_assets(self) -> None:
        seen: set[tuple[str, str]] = set()
        for stack in self.plan.stacks:
            for asset in stack.file_assets:
                where = (self._asset_bucket(asset), str(asset["key"]))
                if where not in seen:
                    seen.add(where)
                    self.upload(*where, asset["release_path"], encrypt=False)

    def upload_pipeline_assets(self) -> None:
        bucket = self.config.artifact_bucket_name
        for path in sorted({p for pipeline in self.plan.pipelines for p in pipeline.assets}):
            self.upload(bucket, path, path, encrypt=True)

    # -- stacks

    def model_package(self) -> str:
        """The model the Inference stack serves: as requested, else the newest Approved one, else ""."""
        if self.model_arn is not None:
            return self.model_arn
        if self.requested_arn is not None:
            self.model_arn = self.requested_arn
        else:
            from botocore.exceptions import ClientError

            try:
                found = self.aws.sagemaker.list_model_packages(
                    ModelPackageGroupName=self.config.model_package_group_name,
                    ModelApprovalStatus="Approved",
                    SortBy="CreationTime",
                    SortOrder="Descending",
                    MaxResults=1,
                )["ModelPackageSummaryList"]
            except ClientError:
                found = []  # no group yet: nothing approved
            self.model_arn = found[0]["ModelPackageArn"] if found else ""
            self.say(f"model package: {self.model_arn or 'none approved yet (no endpoint)'}")
        self.report.model_package_arn = self.model_arn
        return self.model_arn

    def stack_parameters(self, stack: StackPlan) -> list[dict[str, str]]:
        if MODEL_PACKAGE_PARAMETER not in stack.parameters:
            return []
        return [{"ParameterKey": MODEL_PACKAGE_PARAMETER, "ParameterValue": self.model_package()}]

    def template_location(self, stack: StackPlan) -> dict[str, str]:
        body = compact_json(stack.deployed)
        if len(body) <= TEMPLATE_BODY_LIMIT:
            return {"TemplateBody": body.decode("utf-8")}
        qualifier = (self.plan.bootstrap_qualifiers or ["hnb659fds"])[0]
        bucket = self._bootstrap_bucket(qualifier)
        key = f"gitops-templates/{sha256_bytes(body)}.json"
        try:
            self.aws.s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata={SHA256_METADATA: sha256_bytes(body)})
        except aws_errors() as exc:
            raise DeployFailed(
                f"{stack.path}: uploading the template to s3://{bucket}/{key}: {aws_error_text(exc)}"
            ) from exc
        return {"TemplateURL": f"https://{bucket}.s3.{self.config.region}.amazonaws.com/{key}"}

    def deploy_stack(self, stack: StackPlan) -> StackResult:
        cfn = self.aws.cfn
        started = time.perf_counter()
        result = StackResult(stack.name, stack.stack_name, "failed")
        if stack.projection:
            result.dropped = stack.projection.dropped
            result.detached_depends_on = stack.projection.detached
            result.adjusted = stack.projection.adjusted
        live = stack_status(cfn, stack.stack_name)
        status = live["StackStatus"] if live else None
        parameters = self.stack_parameters(stack)
        if live is not None and status in _EMPTY_STACK_STATES:
            # Nothing deployed is lost: such a stack holds no resources, and it cannot be updated.
            self._delete_stack(live, f"the empty stack left in {status}")
            result.note = f"deleted the empty stack an earlier failed deploy left in {status}"
            status = None
        elif status and status.endswith("_IN_PROGRESS"):
            raise DeployFailed(f"stack {stack.stack_name} is busy ({status}); another deploy may be running")
        elif status and status.endswith("_FAILED"):
            raise DeployFailed(
                f"stack {stack.stack_name} is {status}; an operator must repair it first"
                " (continue-update-rollback or delete)"
            )
        elif live is not None and self.target.is_local and _condition_inputs_changed(stack, live, parameters):
            # Embedded target only: moto does not create or delete resources whose Condition flips
            # on an update, so the stack is created afresh with the new values instead.
            self._delete_stack(live, "it (embedded target: a parameter its conditions read changed)")
            result.note = "embedded target: recreated, as moto does not apply condition changes on update"
            status = None
        change_type = "CREATE" if status is None else "UPDATE"
        name = f"gitops-{self.plan.manifest.short_id}-{uuid.uuid4().hex[:8]}"
        self.say(f"{stack.stack_name}: change set {name} ({change_type})")
        try:
            created = cfn.create_change_set(
                StackName=stack.stack_name,
                ChangeSetName=name,
                ChangeSetType=change_type,
                Parameters=parameters,
                Capabilities=CAPABILITIES,
                Description=f"gitops release {self.plan.manifest.short_id}",
                **({"RoleARN": self.execution_role_arn} if self.execution_role_arn else {}),
                **self.template_location(stack),
            )
            change_set = _poll(
                lambda: cfn.describe_change_set(ChangeSetName=created["Id"]),
                lambda d: d["Status"] in ("CREATE_COMPLETE", "FAILED"),
                delay=self.delay / 2,
                timeout=900,
                what=f"change set {name} of {stack.stack_name}",
            )
        except aws_errors() as exc:
            result.reason = f"creating the change set: {aws_error_text(exc)}"
            return self._finish(result, started)
        if change_set["Status"] == "FAILED":
            reason = change_set.get("StatusReason", "")
            cfn.delete_change_set(ChangeSetName=created["Id"])
            if any(marker in reason for marker in _NO_CHANGES):
                result.action = "unchanged"
            else:
                result.reason = f"change set failed: {reason}"
            return self._finish(result, started)
        result.changes = len(change_set.get("Changes", []))
        while change_set.get("NextToken"):
            change_set = cfn.describe_change_set(ChangeSetName=created["Id"], NextToken=change_set["NextToken"])
            result.changes += len(change_set.get("Changes", []))
        token = f"gitops-{uuid.uuid4().hex}"
        executed_at = time.time()
        try:
            cfn.execute_change_set(ChangeSetName=created["Id"], ClientRequestToken=token)
        except aws_errors() as exc:
            # moto applies a change set synchronously and reports a failing resource this way.
            result.reason = aws_error_text(exc) + (
                " (the embedded target does not roll back)" if self.target.is_local else ""
            )
            return self._finish(result, started)
        final = _poll(
            lambda: cfn.describe_stacks(StackName=created["StackId"])["Stacks"][0],
            lambda s: not s["StackStatus"].endswith("_IN_PROGRESS"),
            delay=self.delay,
            timeout=3 * 3600,
            what=f"stack {stack.stack_name}",
        )
        if final["StackStatus"] in _OK_STACK_STATES:
            result.action = "created" if change_type == "CREATE" else "updated"
        else:
            result.reason = f"{final['StackStatus']}: {self._failure_cause(created['StackId'], executed_at)}"
        return self._finish(result, started)

    def _delete_stack(self, live: dict, what: str) -> None:
        cfn = self.aws.cfn
        self.say(f"{live['StackName']}: deleting {what}")
        cfn.delete_stack(StackName=live["StackId"])
        _poll(
            lambda: cfn.describe_stacks(StackName=live["StackId"])["Stacks"][0]["StackStatus"],
            lambda s: not s.endswith("_IN_PROGRESS"),
            delay=self.delay,
            timeout=1800,
            what=f"deleting {live['StackName']}",
        )

    def _failure_cause(self, stack_id: str, since: float) -> str:
        """The first resource that failed in this operation (later failures are mostly cancellations)."""
        events = []
        for page in self.aws.cfn.get_paginator("describe_stack_events").paginate(StackName=stack_id):
            recent = [e for e in page["StackEvents"] if e["Timestamp"].timestamp() >= since - 5]
            events += recent
            if len(recent) < len(page["StackEvents"]):
                break  # newest first: the rest belong to earlier operations
        failed = [
            e
            for e in reversed(events)
            if e["ResourceStatus"].endswith("_FAILED") and "cancelled" not in e.get("ResourceStatusReason", "")
        ]
        if not failed:
            return "no failing resource reported"
        first = failed[0]
        return f"{first['LogicalResourceId']} ({first['ResourceType']}): {first.get('ResourceStatusReason', '')}"

    def _finish(self, result: StackResult, started: float) -> StackResult:
        result.seconds = round(time.perf_counter() - started, 2)
        detail = f" ({result.reason})" if result.reason else ""
        self.say(f"{result.stack_name}: {result.action} in {result.seconds:.1f}s{detail}")
        return result

    # -- SageMaker

    def ensure_model_package_group(self) -> None:
        from botocore.exceptions import ClientError

        name = self.config.model_package_group_name
        sm = self.aws.sagemaker
        try:
            sm.describe_model_package_group(ModelPackageGroupName=name)
            self.report.model_package_group = f"{name}: exists"
            return
        except ClientError as exc:
            if "does not exist" not in aws_error_text(exc):
                raise DeployFailed(f"model package group {name}: {aws_error_text(exc)}") from exc
        sm.create_model_package_group(
            ModelPackageGroupName=name,
            ModelPackageGroupDescription=f"Models of stage {self.config.stage}",
            Tags=[{"Key": STAGE_TAG, "Value": self.config.stage}],
        )
        self.report.model_package_group = f"{name}: created (outside CloudFormation)"
        self.say(f"model package group {name}: created")

    def upsert_pipeline(self, pipeline: PipelinePlan) -> PipelineResult:

        sm = self.aws.sagemaker
        role = self.config.sagemaker_execution_role_arn
        definition = compact_json(pipeline.definition).decode("utf-8")
        tags = [
            {"Key": RELEASE_TAG, "Value": self.plan.manifest.release_id},
            {"Key": STAGE_TAG, "Value": self.config.stage},
        ]
        try:
            current = describe_pipeline(sm, pipeline.pipeline_name)
            if current is None:
                sm.create_pipeline(
                    PipelineName=pipeline.pipeline_name,
                    PipelineDefinition=definition,
                    RoleArn=role,
                    Tags=tags,
                    ClientRequestToken=uuid.uuid4().hex,
                )
                action = "created"
            else:
                same = definition_sha256(current.get("PipelineDefinition")) == pipeline.sha256
                if same and current.get("RoleArn") == role:
                    action = "unchanged"
                else:
                    sm.update_pipeline(PipelineName=pipeline.pipeline_name, PipelineDefinition=definition, RoleArn=role)
                    action = "updated"
                live_tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=current["PipelineArn"])["Tags"]}
                if any(live_tags.get(t["Key"]) != t["Value"] for t in tags):
                    sm.add_tags(ResourceArn=current["PipelineArn"], Tags=tags)
        except aws_errors() as exc:
            raise DeployFailed(f"pipeline {pipeline.pipeline_name} ({pipeline.path}): {aws_error_text(exc)}") from exc
        self.say(f"pipeline {pipeline.pipeline_name}: {action}")
        return PipelineResult(pipeline.name, pipeline.pipeline_name, action, pipeline.sha256)

    # -- the whole stage

    def cfn_execution_role(self) -> str | None:
        """The role CloudFormation acts as: the stage's cfn-exec role, once the first stack created it.

        The very first deploy of a stage (from a workstation, before any of its stacks exist)
        runs as the caller; every later one, the pipeline's included, passes the role, so the
        deploy build role itself needs no rights to create what the templates hold.
        """
        first = self.plan.stacks[0].stack_name if self.plan.stacks else None
        live = stack_status(self.aws.cfn, first) if first else None
        if live is None or live["StackStatus"] not in _USABLE_STACK_STATES:
            self.say(f"{first}: not deployed yet; CloudFormation acts as the caller for this first deploy")
            return None
        return f"arn:aws:iam::{self.config.account}:role/{self.config.cfn_execution_role_name}"

    def run(self) -> None:
        timings = self.report.timings

        def timed(phase: str, step: Callable[[], object]) -> None:
            t0 = time.perf_counter()
            try:
                step()
            finally:
                timings[phase] = round(time.perf_counter() - t0, 2)

        timed("identity", lambda: check_account(self.aws.sts, self.config))
        try:
            timed("bootstrap", self.embedded_bootstrap if self.target.is_local else self.require_bootstrap)
        except aws_errors() as exc:
            stage = self.config.stage
            raise DeployError(f"stage '{stage}': checking the CDK bootstrap: {aws_error_text(exc)}") from exc
        try:
            timed("stack-assets", self.upload_stack_assets)

            def stacks() -> None:
                self.execution_role_arn = self.cfn_execution_role()
                for stack in self.plan.stacks:
                    result = self.deploy_stack(stack)
                    self.report.stacks.append(result)
                    if result.action == "failed":
                        raise DeployFailed(f"stack {result.stack_name}: {result.reason}")

            timed("stacks", stacks)
            timed("model-package-group", self.ensure_model_package_group)
            timed("pipeline-assets", self.upload_pipeline_assets)

            def pipelines() -> None:
                for pipeline in self.plan.pipelines:
                    self.report.pipelines.append(self.upsert_pipeline(pipeline))

            timed("pipelines", pipelines)
        except DeployFailed as exc:
            self.report.ok = False
            self.report.error = str(exc)
        except aws_errors() as exc:
            self.report.ok = False
            self.report.error = aws_error_text(exc)


def _condition_inputs_changed(stack: StackPlan, live: dict, parameters: list[dict[str, str]]) -> bool:
    """True when a parameter the template's Conditions read gets a value other than the live one."""
    read = {ref.target for ref in template_references(stack.deployed.get("Conditions") or {})}
    current = {p["ParameterKey"]: p.get("ParameterValue") for p in live.get("Parameters", [])}
    return any(p["ParameterKey"] in read and current.get(p["ParameterKey"]) != p["ParameterValue"] for p in parameters)


def definition_sha256(text: str | None) -> str | None:
    """sha256 of a pipeline definition in the release's canonical form (None if it is not JSON)."""
    try:
        return sha256_bytes(canonical_json(json.loads(text or "")))
    except ValueError:
        return None


def describe_pipeline(sm: Any, name: str) -> dict | None:
    """DescribePipeline, or None when the pipeline does not exist."""
    from botocore.exceptions import ClientError

    try:
        return sm.describe_pipeline(PipelineName=name)
    except ClientError as exc:
        text = aws_error_text(exc)
        if _error_code(exc) == "ResourceNotFound" or "not find" in text or "does not exist" in text:
            return None
        raise


def _check_model_package_arn(arn: str) -> None:
    if arn and not re.fullmatch(r"arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:model-package/[^\s]+", arn):
        raise DeployError(
            f"--model-package-arn '{arn}' is not a SageMaker model package ARN",
            hint="pass arn:aws:sagemaker:<region>:<account>:model-package/<group>/<version>, or omit it",
        )


def deploy_stage(
    release_dir: Path,
    stage: str,
    target: Target,
    *,
    progress: Progress | None = None,
    model_package_arn: str | None = None,
) -> DeployReport:
    """Deploy one stage of a release: stacks by change set, assets, SageMaker pipelines.

    Bad input (release, stage, template, parameters) and refusals (wrong account, no bootstrap)
    raise before anything changes. A failing step during the deploy stops it and is returned in
    the report (ok=False, error); report.raise_for_failure() turns it into DeployFailed.
    """
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    require_gate(release_dir, progress=say)  # the gate runs where the deploy runs (docs/design.md §7.6)
    if model_package_arn is not None:
        _check_model_package_arn(model_package_arn)
    t0 = time.perf_counter()
    plan = plan_stage(release_dir, stage, target)
    for stack in plan.stacks:
        if stack.projection and stack.projection.dropped:
            say(
                f"{stack.stack_name}: embedded projection drops {len(stack.projection.dropped)} of"
                f" {len(stack.template['Resources'])} resources"
            )
    deploy = _StageDeploy(plan, target, say, model_package_arn)
    deploy.report.timings["plan"] = round(time.perf_counter() - t0, 2)
    deploy.run()
    deploy.report.seconds = round(time.perf_counter() - started, 2)
    return deploy.report
