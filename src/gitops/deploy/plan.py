"""The plan: everything deploy and verify need, read and checked from the release, with no AWS call."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops.config import StageConfig
from gitops.deploy.model_parameters import MODEL_PARAMETERS
from gitops.deploy.order import stack_order
from gitops.deploy.templates import validate_template
from gitops.errors import DeployError, TemplateError
from gitops.local.projection import MotoCapabilities, Projection, embedded_projection
from gitops.model.pin import RELEASE_MODEL, ModelPin, check_threshold, load_release_pin
from gitops.release.manifest import ReleaseManifest, check_stage_summary, load_release, load_stage_config_from_release
from gitops.target import Target

# The engine's own names: the tags it puts on what it upserts.
RELEASE_TAG = "gitops:release-id"
STAGE_TAG = "gitops:stage"
_BOOTSTRAP_PARAMETER = re.compile(r"^/cdk-bootstrap/([A-Za-z0-9_-]+)/version$")


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
    pin: ModelPin  # the release's model.json: the one model every stage serves

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


def read_json(release_dir: Path, rel: str) -> Any:
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
    pin = load_release_pin(release_dir)
    if pin.model is not None:
        check_threshold(pin.model, config, f"{release_dir / RELEASE_MODEL}")
    templates: dict[str, dict] = {}
    assets_of: dict[str, list[dict]] = {}
    declared: dict[str, list[str]] = {}
    for name, stack in summary.stacks.items():
        rel = rel_path(stage, name)
        template = read_json(release_dir, rel)
        validate_template(template, rel)
        for pname, spec in (template.get("Parameters") or {}).items():
            if pname not in MODEL_PARAMETERS and "Default" not in spec:
                raise TemplateError(f"{rel}: parameter '{pname}' has no Default and deploy supplies no value for it")
        templates[name] = template
        assets_doc = read_json(release_dir, f"stages/{stage}/templates/{name}.assets.json")
        if assets_doc.get("stack_name") != stack.stack_name:
            raise DeployError(
                f"{release_dir}: {name}.assets.json names stack '{assets_doc.get('stack_name')}',"
                f" the manifest '{stack.stack_name}'"
            )
        assets_of[name] = list(assets_doc.get("files", []))
        declared[name] = list(assets_doc.get("depends_on", []))  # recorded from the cloud assembly at render
        for asset in assets_of[name]:
            if asset.get("release_path") not in manifest.files:
                raise DeployError(
                    f"{release_dir}: {name}.assets.json refers to {asset.get('release_path')},"
                    " which the release does not carry"
                )
    stacks = []
    capabilities = MotoCapabilities(target.local_dir) if target.is_local else None
    for name, deps in declared.items():
        unknown = sorted(set(deps) - set(templates))
        if unknown:
            raise DeployError(
                f"{release_dir}: {name}.assets.json depends on stack {unknown[0]}, not in stage '{stage}'"
            )
    for name in stack_order(templates, declared):
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
        definition = read_json(release_dir, rel)
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
    return StagePlan(release_dir, manifest, config, stacks, pipelines, pin)
