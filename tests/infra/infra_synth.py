"""The CDK app of infra/ as tests/infra see it: synthesized once, and readers of its templates."""

from __future__ import annotations

import fnmatch
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # infra/ and pipeline_defs/ are imported from the repository root
    sys.path.insert(0, str(ROOT))

import cfnlint.data.schemas  # noqa: E402

from gitops.config import StageConfig, load_stages  # noqa: E402
from infra.app import build_app, load_cdk_context  # noqa: E402
from infra.stacks.specs import STACKS  # noqa: E402

STAGES = load_stages(ROOT)
STAGE_NAMES = list(STAGES)
STACK_IDS = [spec.id for spec in STACKS]
SYNTH_ENV = {"JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1"}


@dataclass
class Synth:
    outdir: Path
    context: dict
    templates: dict[tuple[str, str], dict]  # (stage, stack id) -> template
    dependencies: dict[tuple[str, str], set[str]]

    def template(self, stage: str, stack_id: str) -> dict:
        return self.templates[(stage, stack_id)]

    def resources(self, stage: str, stack_id: str, type_: str) -> dict[str, dict]:
        return {k: v for k, v in self.template(stage, stack_id)["Resources"].items() if v["Type"] == type_}

    def one(self, stage: str, stack_id: str, type_: str) -> dict:
        found = list(self.resources(stage, stack_id, type_).values())
        assert len(found) == 1, f"{stage}/{stack_id}: expected one {type_}, found {len(found)}"
        return found[0]


def synthesize(outdir: Path) -> Synth:
    """The whole app, every stage, synthesized into outdir (jsii start-up and synthesis take ~20 s)."""
    os.environ.update(SYNTH_ENV)
    app = build_app(ROOT, STAGES, outdir=str(outdir))
    assembly = app.synth()
    stacks = {artifact.id: artifact for artifact in assembly.stacks_recursively}
    stack_ids = {artifact_id: artifact.hierarchical_id.split("/")[1] for artifact_id, artifact in stacks.items()}
    templates, dependencies = {}, {}
    for artifact in stacks.values():
        stage, stack_id = artifact.hierarchical_id.split("/")
        templates[(stage, stack_id)] = json.loads(Path(artifact.template_full_path).read_text())
        dependencies[(stage, stack_id)] = {stack_ids[d.id] for d in artifact.dependencies if d.id in stack_ids}
    context = {key: app.node.try_get_context(key) for key in load_cdk_context(ROOT)}
    return Synth(outdir, context, templates, dependencies)


def cfg_of(stage: str) -> StageConfig:
    return STAGES[stage]


def resolve(value, region: str):
    """A string out of the few intrinsics used in service names and ARNs (Join, Ref AWS::Region)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        sep, parts = value["Fn::Join"]
        return sep.join(resolve(part, region) for part in parts)
    if value == {"Ref": "AWS::Region"}:
        return region
    if value == {"Ref": "AWS::URLSuffix"}:
        return "amazonaws.com"
    return json.dumps(value)


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def policy_statements(template: dict) -> list[tuple[str, dict]]:
    """Every statement of every identity and resource policy in a template, with its resource id."""
    found = []
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        documents = []
        if resource["Type"] == "AWS::IAM::Role":
            documents += [p["PolicyDocument"] for p in props.get("Policies", [])]
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents.append(props["PolicyDocument"])
        for key in ("PolicyDocument", "KeyPolicy"):
            if resource["Type"] not in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy") and key in props:
                documents.append(props[key])
        for document in documents:
            found += [(logical_id, statement) for statement in document["Statement"]]
    return found


def identity_statements(template: dict) -> list[tuple[str, dict]]:
    found = []
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::Role":
            found += [(logical_id, s) for p in props.get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
        if resource["Type"] == "AWS::IAM::Policy":
            found += [(logical_id, s) for s in props["PolicyDocument"]["Statement"]]
    return found


def handler_permissions(resource_type: str, region: str) -> set[str]:
    """What CloudFormation's handlers for the type call (the pinned cfn-lint provider schemas)."""
    schemas = Path(cfnlint.data.schemas.__file__).parent
    providers = json.loads((schemas / "providers" / f"{region}.json").read_text())
    schema = json.loads((schemas / "resources" / f"{providers[resource_type]}.json").read_text())
    handlers = schema.get("handlers", {})
    return {p for op in ("create", "read", "update", "delete") for p in handlers.get(op, {}).get("permissions", [])}


def allows(patterns: set[str], action: str) -> bool:
    return any(fnmatch.fnmatchcase(action.lower(), pattern.lower()) for pattern in patterns)
