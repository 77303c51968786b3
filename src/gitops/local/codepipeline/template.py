"""The local CodePipeline runner: read a synthesized pipeline's stages and actions, then run them here.

The same stage order and the same buildspecs as AWS runs (docs/design.md §5), read from the template CDK
synthesized. Only what the env pipelines use is supported: Source/CodeCommit, Build|Test/CodeBuild
and Approval/Manual actions. The runner knows no git and no AWS: the caller injects the source
checkout (source_dir_provider) and the approval decision (approval_gate).

CloudFormation intrinsics are resolved at read time as follows (anything else becomes a readable
placeholder such as ``{{GetAtt:Project.Arn}}``):

- ``Ref`` to a parameter: the value passed in ``parameters``, else its Default (not for SSM
  parameter types), else ``{{Ref:Name}}``;
- ``Ref`` to a pseudo parameter: ``pseudo_parameters`` (e.g. AWS::Region), else AWS::Partition
  "aws" and AWS::URLSuffix "amazonaws.com", else ``{{AWS::Region}}``; AWS::NoValue drops the item;
- ``Ref`` to a resource whose Ref is its name, when the template names it literally
  (see _REF_NAME_PROPERTY: CodeBuild Name, S3 BucketName, ...), else ``{{Ref:LogicalId}}``;
- ``Fn::GetAtt`` of a name attribute given literally (CodeCommit Repository.Name), else a placeholder;
- ``Fn::Join``, ``Fn::Sub`` (both forms, ``${!Literal}``), ``Fn::Select``: evaluated.

CodePipeline variables (``#{codepipeline.PipelineExecutionId}``, ``#{<Namespace>.<Name>}`` of an
earlier action, ``#{variables.<Name>}`` of the pipeline) are resolved at run time in CodeBuild
environment variables and in the approval's custom data, as CodePipeline does.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import groupby
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gitops.errors import GitopsError
from gitops.local.buildspec_runner import BuildResult, ReferenceResolver, run_buildspec
from gitops.release.buildspec import Buildspec, BuildspecError, load_buildspec, parse_buildspec

PIPELINE_TYPE = "AWS::CodePipeline::Pipeline"
PROJECT_TYPE = "AWS::CodeBuild::Project"
DEFAULT_BUILDSPEC = "buildspec.yml"
DEFAULT_TIMEOUT_MINUTES = 60
_NAME = re.compile(r"^[A-Za-z0-9.@_-]{1,100}$")  # CodePipeline's pattern for stage, action and artifact names
_VARIABLE = re.compile(r"#\{([A-Za-z0-9@_-]+)\.([A-Za-z0-9@_.-]+)\}")
_NO_VALUE = object()

# Resource types whose Ref is their physical name, and the property that sets that name.
_REF_NAME_PROPERTY = {
    "AWS::CodeBuild::Project": "Name",
    "AWS::CodePipeline::Pipeline": "Name",
    "AWS::S3::Bucket": "BucketName",
    "AWS::IAM::Role": "RoleName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::SSM::Parameter": "Name",
    "AWS::ECR::Repository": "RepositoryName",
    "AWS::KMS::Alias": "AliasName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::SageMaker::FeatureGroup": "FeatureGroupName",
}
# (resource type, attribute) -> the property holding the same value.
_GETATT_PROPERTY = {
    ("AWS::CodeCommit::Repository", "Name"): "RepositoryName",
    ("AWS::SageMaker::ModelPackageGroup", "ModelPackageGroupName"): "ModelPackageGroupName",
    ("AWS::SageMaker::Pipeline", "PipelineName"): "PipelineName",
}
_PSEUDO_DEFAULTS = {"AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}


class PipelineRunnerError(GitopsError):
    """A pipeline template cannot be read, or the local runner cannot run one of its actions."""

    hint = "fix the named stage/action in infra/ (then `gitops render`), or the named template"


# --- the pipeline model ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EnvVar:
    name: str
    value: str
    type: Literal["PLAINTEXT", "PARAMETER_STORE", "SECRETS_MANAGER"] = "PLAINTEXT"


@dataclass(frozen=True)
class SourceAction:
    name: str
    run_order: int
    output_artifacts: tuple[str, ...]
    namespace: str | None
    repository: str
    branch: str
    output_format: str  # CODE_ZIP (files only) or CODEBUILD_CLONE_REF (with .git)
    category: str = "Source"
    provider: str = "CodeCommit"
    input_artifacts: tuple[str, ...] = ()


@dataclass(frozen=True)
class CodeBuildAction:
    name: str
    run_order: int
    input_artifacts: tuple[str, ...]
    output_artifacts: tuple[str, ...]
    namespace: str | None
    category: str  # Build or Test
    project: str  # physical name, or a placeholder when CloudFormation names it
    project_logical_id: str
    buildspec: Buildspec | None  # inline in the project
    buildspec_path: str | None  # else a file in the primary source
    env_vars: tuple[EnvVar, ...]  # the project's, then the action's (the action's win)
    primary_source: str
    timeout_minutes: int
    provider: str = "CodeBuild"


@dataclass(frozen=True)
class ApprovalAction:
    name: str
    run_order: int
    namespace: str | None
    custom_data: str | None
    external_link: str | None
    category: str = "Approval"
    provider: str = "Manual"
    input_artifacts: tuple[str, ...] = ()
    output_artifacts: tuple[str, ...] = ()


Action = SourceAction | CodeBuildAction | ApprovalAction


@dataclass(frozen=True)
class PipelineStage:
    name: str
    actions: tuple[Action, ...]  # in RunOrder, then template order


@dataclass(frozen=True)
class PipelineModel:
    name: str
    logical_id: str
    template_path: str
    stages: tuple[PipelineStage, ...]
    variables: Mapping[str, str] = field(default_factory=dict)  # pipeline-level variables and defaults

    @property
    def stage_names(self) -> list[str]:
        return [stage.name for stage in self.stages]

    def stage(self, name: str) -> PipelineStage:
        found = next((s for s in self.stages if s.name == name), None)
        if found is None:
            raise PipelineRunnerError(f"{self.template_path}: pipeline {self.name} has no stage '{name}'")
        return found


# --- reading the template -------------------------------------------------------------------------


class _Intrinsics:
    """Resolves the intrinsics listed in the module docstring; see there for what each yields."""

    def __init__(self, template: dict, parameters: Mapping[str, str], pseudo: Mapping[str, str]) -> None:
        self.resources: dict = template.get("Resources") or {}
        self.parameters: dict = template.get("Parameters") or {}
        self.given = parameters
        self.pseudo = {**_PSEUDO_DEFAULTS, **pseudo}

    def resolve(self, node: Any, where: str, seen: frozenset[str] = frozenset()) -> Any:
        if isinstance(node, list):
            items = [self.resolve(item, where, seen) for item in node]
            return [item for item in items if item is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            key, arg = next(iter(node.items()))
            if key == "Ref":
                return self._ref(arg, where, seen)
            if key == "Fn::GetAtt":
                return self._getatt(arg, where, seen)
            if key == "Fn::Join":
                return self._join(arg, where, seen)
            if key == "Fn::Sub":
                return self._sub(arg, where, seen)
            if key == "Fn::Select":
                return self._select(arg, where, seen)
            if key == "Fn::ImportValue":
                return f"{{{{ImportValue:{self.resolve(arg, where, seen)}}}}}"
            if key.startswith("Fn::"):
                return f"{{{{{key}}}}}"
        return {k: self.resolve(v, where, seen) for k, v in node.items()}

    def text(self, node: Any, where: str) -> str:
        value = self.resolve(node, where)
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise PipelineRunnerError(f"{where}: expected a string, got {type(value).__name__} {value!r}")
        return str(value)

    def _ref(self, name: Any, where: str, seen: frozenset[str]) -> Any:
        if not isinstance(name, str):
            raise PipelineRunnerError(f"{where}: Ref needs a logical id, got {name!r}")
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name.startswith("AWS::"):
            return self.pseudo.get(name, f"{{{{{name}}}}}")
        if name in self.parameters:
            if name in self.given:
                return self.given[name]
            param = self.parameters[name] or {}
            if "Default" in param and not str(param.get("Type", "")).startswith("AWS::SSM::"):
                return str(param["Default"])
            return f"{{{{Ref:{name}}}}}"
        resource = self.resources.get(name)
        if not isinstance(resource, dict):
            raise PipelineRunnerError(f"{where}: Ref to '{name}', which is not a parameter or resource")
        prop = _REF_NAME_PROPERTY.get(resource.get("Type", ""))
        return self._property(name, prop, where, seen) or f"{{{{Ref:{name}}}}}"

    def _getatt(self, arg: Any, where: str, seen: frozenset[str]) -> str:
        if isinstance(arg, str) and "." in arg:
            arg = arg.split(".", 1)
        if not (isinstance(arg, list) and len(arg) == 2 and all(isinstance(a, str) for a in arg)):
            raise PipelineRunnerError(f"{where}: Fn::GetAtt needs [LogicalId, Attribute], got {arg!r}")
        name, attr = arg
        resource = self.resources.get(name)
        if not isinstance(resource, dict):
            raise PipelineRunnerError(f"{where}: Fn::GetAtt of '{name}', which is not a resource")
        prop = _GETATT_PROPERTY.get((resource.get("Type", ""), attr))
        return self._property(name, prop, where, seen) or f"{{{{GetAtt:{name}.{attr}}}}}"

    def _property(self, name: str, prop: str | None, where: str, seen: frozenset[str]) -> str | None:
        if prop is None or name in seen:
            return None
        value = (self.resources[name].get("Properties") or {}).get(prop)
        if value is None:
            return None
        resolved = self.resolve(value, where, seen | {name})
        return resolved if isinstance(resolved, str) else None

    def _join(self, arg: Any, where: str, seen: frozenset[str]) -> str:
        if not (isinstance(arg, list) and len(arg) == 2 and isinstance(arg[0], str)):
            raise PipelineRunnerError(f"{where}: Fn::Join needs [delimiter, [values]], got {arg!r}")
        values = self.resolve(arg[1], where, seen)
        if not isinstance(values, list) or not all(isinstance(v, str | int | float) for v in values):
            raise PipelineRunnerError(f"{where}: Fn::Join values must resolve to strings, got {values!r}")
        return arg[0].join(str(v) for v in values)

    def _sub(self, arg: Any, where: str, seen: frozenset[str]) -> str:
        text, local = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1]) if isinstance(arg, list) else (None, {})
        if not isinstance(text, str) or not isinstance(local, dict):
            raise PipelineRunnerError(f"{where}: Fn::Sub needs a string or [string, {{variables}}], got {arg!r}")

        def one(match: re.Match) -> str:
            ref = match.group(1)
            if ref.startswith("!"):
                return "${" + ref[1:] + "}"
            if ref in local:
                return str(self.resolve(local[ref], where, seen))
            if "." in ref and not ref.startswith("AWS::"):
                return self._getatt(ref, where, seen)
            value = self._ref(ref, where, seen)
            return "" if value is _NO_VALUE else str(value)

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def _select(self, arg: Any, where: str, seen: frozenset[str]) -> Any:
        if not (isinstance(arg, list) and len(arg) == 2):
            raise PipelineRunnerError(f"{where}: Fn::Select needs [index, [values]], got {arg!r}")
        index, values = self.resolve(arg[0], where, seen), self.resolve(arg[1], where, seen)
        try:
            return values[int(index)]
        except (TypeError, ValueError, IndexError, KeyError) as exc:
            raise PipelineRunnerError(f"{where}: Fn::Select index {index!r} out of {values!r}") from exc


def _require(mapping: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = mapping.get(key) if isinstance(mapping, dict) else None
    if not isinstance(value, kind):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise PipelineRunnerError(f"{where}: '{key}' must be a {expected}, got {value!r}")
    return value


def _name(value: Any, what: str, where: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value) or value in (".", ".."):
        raise PipelineRunnerError(f"{where}: {what} {value!r} is not a valid name ([A-Za-z0-9.@_-], 1-100)")
    return value


def _artifact_names(raw: Any, key: str, where: str) -> tuple[str, ...]:
    items = raw.get(key) or []
    if not isinstance(items, list):
        raise PipelineRunnerError(f"{where}: '{key}' must be a list")
    return tuple(_name(item.get("Name") if isinstance(item, dict) else None, "artifact", where) for item in items)


def _project_env(project: dict, where: str, intr: _Intrinsics) -> list[EnvVar]:
    raw = (project.get("Environment") or {}).get("EnvironmentVariables") or []
    if not isinstance(raw, list):
        raise PipelineRunnerError(f"{where}: Environment.EnvironmentVariables must be a list")
    out = []
    for i, item in enumerate(raw):
        at = f"{where}: Environment.EnvironmentVariables[{i}]"
        name = intr.text(_require(item, "Name", (str, dict), at), at)
        out.append(EnvVar(name, intr.text(item.get("Value", ""), at), _env_type(item.get("Type", "PLAINTEXT"), at)))
    return out


def _action_env(config: dict, where: str, intr: _Intrinsics) -> list[EnvVar]:
    if "EnvironmentVariables" not in config:
        return []
    at = f"{where}: Configuration.EnvironmentVariables"
    text = intr.text(config["EnvironmentVariables"], at)
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PipelineRunnerError(f"{at}: not a JSON list ({exc.msg})") from exc
    if not isinstance(raw, list):
        raise PipelineRunnerError(f"{at}: must be a JSON list of {{name, value, type}}")
    out = []
    for i, item in enumerate(raw):
        name = _require(item, "name", str, f"{at}[{i}]")
        value = _require(item, "value", str, f"{at}[{i}]")
        out.append(EnvVar(name, value, _env_type(item.get("type", "PLAINTEXT"), f"{at}[{i}]")))
    return out


def _env_type(value: Any, where: str) -> Any:
    if value not in ("PLAINTEXT", "PARAMETER_STORE", "SECRETS_MANAGER"):
        raise PipelineRunnerError(f"{where}: type {value!r} is not PLAINTEXT, PARAMETER_STORE or SECRETS_MANAGER")
    return value


def _merge_env(*groups: list[EnvVar]) -> tuple[EnvVar, ...]:
    merged: dict[str, EnvVar] = {}
    for group in groups:
        for var in group:
            merged.pop(var.name, None)
            merged[var.name] = var
    return tuple(merged.values())


def _project_buildspec(project: dict, lid: str, where: str, intr: _Intrinsics) -> tuple[Buildspec | None, str | None]:
    source = project.get("Source") or {}
    if "BuildSpec" not in source:
        return None, DEFAULT_BUILDSPEC
    at = f"{where}: project {lid} Source.BuildSpec"
    text = intr.text(source["BuildSpec"], at)
    stripped = text.strip()
    if "\n" not in stripped and not stripped.startswith("{"):
        return None, stripped  # a file name in the source, like CodeBuild's buildspec override
    try:
        return parse_buildspec(text, at), None
    except BuildspecError as exc:
        raise PipelineRunnerError(str(exc)) from exc


def _codebuild_action(
    name: str, common: dict, config: dict, where: str, intr: _Intrinsics, resources: dict
) -> CodeBuildAction:
    project_ref = config.get("ProjectName")
    if isinstance(project_ref, dict) and set(project_ref) == {"Ref"} and isinstance(project_ref["Ref"], str):
        lid = project_ref["Ref"]
    else:
        wanted = intr.text(project_ref, f"{where}: Configuration.ProjectName") if project_ref is not None else None
        lid = next(
            (
                rid
                for rid, res in resources.items()
                if isinstance(res, dict)
                and res.get("Type") == PROJECT_TYPE
                and wanted is not None
                and intr.resolve((res.get("Properties") or {}).get("Name"), where) == wanted
            ),
            "",
        )
        if not lid:
            raise PipelineRunnerError(f"{where}: Configuration.ProjectName {project_ref!r} is not a project here")
    project = resources.get(lid)
    if not isinstance(project, dict) or project.get("Type") != PROJECT_TYPE:
        raise PipelineRunnerError(f"{where}: Configuration.ProjectName refers to '{lid}', not an {PROJECT_TYPE}")
    props = project.get("Properties") or {}
    inputs = common["input_artifacts"]
    if not inputs:
        raise PipelineRunnerError(f"{where}: a CodeBuild action needs an input artifact")
    primary = intr.text(config["PrimarySource"], where) if "PrimarySource" in config else inputs[0]
    if (len(inputs) > 1 and "PrimarySource" not in config) or primary not in inputs:
        raise PipelineRunnerError(f"{where}: Configuration.PrimarySource must name one of the inputs {list(inputs)}")
    timeout = intr.resolve(props.get("TimeoutInMinutes", DEFAULT_TIMEOUT_MINUTES), where)
    if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 1:
        raise PipelineRunnerError(f"{where}: project {lid} TimeoutInMinutes must be a positive integer")
    buildspec, buildspec_path = _project_buildspec(props, lid, where, intr)
    return CodeBuildAction(
        name=name,
        **common,
        project=intr.text({"Ref": lid}, where),
        project_logical_id=lid,
        buildspec=buildspec,
        buildspec_path=buildspec_path,
        env_vars=_merge_env(_project_env(props, f"{where}: project {lid}", intr), _action_env(config, where, intr)),
        primary_source=primary,
        timeout_minutes=timeout,
    )


def _read_action(raw: Any, where: str, intr: _Intrinsics, resources: dict) -> Action:
    if not isinstance(raw, dict):
        raise PipelineRunnerError(f"{where}: an action must be a mapping")
    name = _name(raw.get("Name"), "action name", where)
    where = f"{where} action '{name}'"
    type_id = _require(raw, "ActionTypeId", dict, where)
    kind = tuple(type_id.get(k) for k in ("Category", "Owner", "Provider"))
    run_order = intr.resolve(raw.get("RunOrder", 1), where)
    if not isinstance(run_order, int) or isinstance(run_order, bool) or not 1 <= run_order <= 999:
        raise PipelineRunnerError(f"{where}: RunOrder must be an integer from 1 to 999, got {run_order!r}")
    config = raw.get("Configuration") or {}
    if not isinstance(config, dict):
        raise PipelineRunnerError(f"{where}: Configuration must be a mapping")
    namespace = raw.get("Namespace")
    if namespace is not None:
        namespace = _name(namespace, "namespace", where)
    inputs = _artifact_names(raw, "InputArtifacts", where)
    outputs = _artifact_names(raw, "OutputArtifacts", where)
    common = {"run_order": run_order, "namespace": namespace}
    if kind == ("Source", "AWS", "CodeCommit"):
        if inputs or len(outputs) != 1:
            raise PipelineRunnerError(f"{where}: a CodeCommit source takes no input and has exactly one output")
        return SourceAction(
            name=name,
            **common,
            output_artifacts=outputs,
            repository=intr.text(_require(config, "RepositoryName", (str, dict), where), where),
            branch=intr.text(_require(config, "BranchName", (str, dict), where), where),
            output_format=intr.text(config.get("OutputArtifactFormat", "CODE_ZIP"), where),
        )
    if kind[0] in ("Build", "Test") and kind[1:] == ("AWS", "CodeBuild"):
        common.update(input_artifacts=inputs, output_artifacts=outputs, category=kind[0])
        return _codebuild_action(name, common, config, where, intr, resources)
    if kind == ("Approval", "AWS", "Manual"):
        if inputs or outputs:
            raise PipelineRunnerError(f"{where}: a manual approval takes no input or output artifacts")
        custom, link = config.get("CustomData"), config.get("ExternalEntityLink")
        return ApprovalAction(
            name=name,
            **common,
            custom_data=intr.text(custom, where) if custom is not None else None,
            external_link=intr.text(link, where) if link is not None else None,
        )
    raise PipelineRunnerError(
        f"{where}: action type {'/'.join(str(k) for k in kind)} is not supported by the local runner"
        " (supported: Source/AWS/CodeCommit, Build|Test/AWS/CodeBuild, Approval/AWS/Manual)"
    )


def _check_structure(stages: list[PipelineStage], where: str) -> None:
    """What CodePipeline enforces and moto does not: source first, artifacts produced before use."""
    produced: set[str] = set()
    namespaces: set[str] = set()
    for index, stage in enumerate(stages):
        at = f"{where} stage '{stage.name}'"
        sources = [a for a in stage.actions if isinstance(a, SourceAction)]
        if index == 0 and len(sources) != len(stage.actions):
            raise PipelineRunnerError(f"{at}: the first stage may hold only source actions")
        if index > 0 and sources:
            raise PipelineRunnerError(f"{at} action '{sources[0].name}': source actions belong in the first stage")
        names = [a.name for a in stage.actions]
        if len(set(names)) != len(names):
            raise PipelineRunnerError(f"{at}: action names must be unique within a stage")
        for _order, group in groupby(stage.actions, key=lambda a: a.run_order):
            group = list(group)
            for action in group:
                missing = [name for name in action.input_artifacts if name not in produced]
                if missing:
                    raise PipelineRunnerError(
                        f"{at} action '{action.name}': input artifact '{missing[0]}' is produced by no earlier action"
                    )
            for action in group:
                if action.namespace and action.namespace in namespaces:
                    raise PipelineRunnerError(f"{at} action '{action.name}': namespace '{action.namespace}' is reused")
                if action.namespace:
                    namespaces.add(action.namespace)
                for name in action.output_artifacts:
                    if name in produced:
                        raise PipelineRunnerError(f"{at} action '{action.name}': output artifact '{name}' is reused")
                    produced.add(name)


def read_pipeline(
    template: dict,
    template_path: Path | str,
    *,
    logical_id: str | None = None,
    parameters: Mapping[str, str] | None = None,
    pseudo_parameters: Mapping[str, str] | None = None,
) -> PipelineModel:
    """The pipeline of a synthesized template: stages in order, actions by RunOrder, buildspecs parsed.

    logical_id picks the pipeline when the template has several. Any problem raises
    PipelineRunnerError naming the template and the stage/action.
    """
    path = str(template_path)
    resources = template.get("Resources") if isinstance(template, dict) else None
    if not isinstance(resources, dict):
        raise PipelineRunnerError(f"{path}: not a CloudFormation template (no Resources mapping)")
    found = sorted(lid for lid, res in resources.items() if isinstance(res, dict) and res.get("Type") == PIPELINE_TYPE)
    if logical_id is None and len(found) != 1:
        what = "no" if not found else f"{len(found)} ({', '.join(found)}); pass logical_id to pick one of"
        raise PipelineRunnerError(f"{path}: {what} {PIPELINE_TYPE} resources")
    lid = logical_id or found[0]
    if lid not in found:
        raise PipelineRunnerError(f"{path}: no {PIPELINE_TYPE} with logical id '{lid}' (have {', '.join(found)})")
    where = f"{path}: pipeline {lid}"
    intr = _Intrinsics(template, parameters or {}, pseudo_parameters or {})
    props = resources[lid].get("Properties") or {}
    name = intr.text(props["Name"], where) if "Name" in props else lid
    raw_stages = props.get("Stages")
    if not isinstance(raw_stages, list) or len(raw_stages) < 2:
        raise PipelineRunnerError(f"{where}: Stages must list at least two stages")
    stages: list[PipelineStage] = []
    for raw in raw_stages:
        stage_name = _name(raw.get("Name") if isinstance(raw, dict) else None, "stage name", where)
        at = f"{where} stage '{stage_name}'"
        if stage_name in (s.name for s in stages):
            raise PipelineRunnerError(f"{at}: stage names must be unique")
        raw_actions = raw.get("Actions")
        if not isinstance(raw_actions, list) or not raw_actions:
            raise PipelineRunnerError(f"{at}: Actions must list at least one action")
        actions = [_read_action(item, at, intr, resources) for item in raw_actions]
        actions.sort(key=lambda a: a.run_order)  # stable: template order within a RunOrder
        stages.append(PipelineStage(stage_name, tuple(actions)))
    _check_structure(stages, where)
    variables = {}
    for i, var in enumerate(props.get("Variables") or []):
        at = f"{where}: Variables[{i}]"
        variables[_require(var, "Name", str, at)] = intr.text(var.get("DefaultValue", ""), at)
    return PipelineModel(name=name, logical_id=lid, template_path=path, stages=tuple(stages), variables=variables)


def read_pipeline_file(path: Path, **options: Any) -> PipelineModel:
    """read_pipeline() of a template file."""
    try:
        template = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PipelineRunnerError(f"{path}: template not found") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PipelineRunnerError(f"{path}: not a readable JSON template ({exc})") from exc
    return read_pipeline(template, path, **options)


def load_stage_pipeline(release_dir: Path, stage: str, **options: Any) -> PipelineModel:
    """The one pipeline among release/stages/<stage>/templates/*.template.json."""
    directory = release_dir / "stages" / stage / "templates"
    holding = []
    for path in sorted(directory.glob("*.template.json")):
        try:
            template = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PipelineRunnerError(f"{path}: not a readable JSON template ({exc})") from exc
        resources = template.get("Resources") if isinstance(template, dict) else None
        if isinstance(resources, dict) and any(
            isinstance(r, dict) and r.get("Type") == PIPELINE_TYPE for r in resources.values()
        ):
            holding.append((path, template))
    if len(holding) != 1:
        names = ", ".join(p.name for p, _ in holding) or "none"
        raise PipelineRunnerError(f"{directory}: expected one template with a {PIPELINE_TYPE}, found {names}")
    path, template = holding[0]
    return read_pipeline(template, path, **options)


# --- the execution record -------------------------------------------------------------------------


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


ActionStatus = Literal["NotStarted", "InProgress", "Succeeded", "Failed", "Rejected"]


class ActionRecord(_Record):
    name: str
    category: str
    provider: str
    run_order: int
    status: ActionStatus = "NotStarted"
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_seconds: float | None = None
    message: str = ""  # why it failed, or the approval's summary
    output_variables: dict[str, str] = Field(default_factory=dict)
    build: BuildResult | None = None


class StageRecord(_Record):
    name: str
    status: Literal["NotStarted", "InProgress", "Succeeded", "Failed"] = "NotStarted"
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_seconds: float | None = None
    actions: list[ActionRecord]

    def action(self, name: str) -> ActionRecord:
        found = next((a for a in self.actions if a.name == name), None)
        if found is None:
            raise KeyError(f"stage {self.name} has no action {name!r}")
        return found


class ExecutionRecord(_Record):
    """One run of a pipeline; JSON via model_dump_json() / model_validate_json()."""

    execution_id: str
    pipeline_name: str
    template: str
    status: Literal["InProgress", "Succeeded", "Failed", "Rejected", "Stopped"] = "InProgress"
    started_at: datetime
    ended_at: datetime | None = None
    duration_seconds: float | None = None
    failed_stage: str | None = None
    failed_action: str | None = None
    failure: str | None = None
    stages: list[StageRecord]

    def stage(self, name: str) -> StageRecord:
        found = next((s for s in self.stages if s.name == name), None)
        if found is None:
            raise KeyError(f"execution {self.execution_id} has no stage {name!r}")
        return found

    @property
    def pending_approval(self) -> tuple[str, str] | None:
        """(stage, action) of the approval this execution waits for, if any."""
        for stage in self.stages:
            for action in stage.actions:
                if action.category == "Approval" and action.status == "InProgress":
                    return stage.name, action.name
        return None

    @classmethod
    def new(cls, model: PipelineModel, execution_id: str) -> ExecutionRecord:
        return cls(
            execution_id=execution_id,
            pipeline_name=model.name,
            template=model.template_path,
            started_at=_now(),
            stages=[
                StageRecord(
                    name=stage.name,
                    actions=[
                        ActionRecord(name=a.name, category=a.category, provider=a.provider, run_order=a.run_order)
                        for a in stage.actions
                    ],
                )
                for stage in model.stages
            ],
        )


def _now() -> datetime:
    return datetime.now(UTC)


def _finish(record: ActionRecord | StageRecord | ExecutionRecord) -> None:
    record.ended_at = _now()
    if record.started_at is not None:
        record.duration_seconds = round((record.ended_at - record.started_at).total_seconds(), 3)


# --- running --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceOutput:
    """What a source provider may return instead of a bare directory: the checkout and its variables.

    variables are the source action's output variables, as CodeCommit sets them (CommitId,
    CommitMessage, AuthorDate, ...); RepositoryName and BranchName are filled in from the template.
    """

    directory: Path
    variables: Mapping[str, str] = field(default_factory=dict)


SourceProvider = Callable[[], Path | SourceOutput]
ApprovalGate = Callable[[str, str, str | None], tuple[str, str]]
Log = Callable[[str], None]


class _ActionFailed(Exception):
    def __init__(self, message: str, status: ActionStatus = "Failed") -> None:
        super().__init__(message)
        self.status = status


class _Execution:
    def __init__(
        self,
        model: PipelineModel,
        record: ExecutionRecord,
        *,
        source_dir_provider: SourceProvider,
        approval_gate: ApprovalGate,
        env: Mapping[str, str],
        root: Path,
        log: Log,
        on_update: Callable[[ExecutionRecord], None] | None,
        resolve_reference: ReferenceResolver | None,
        base_env: Mapping[str, str] | None,
        variables: Mapping[str, str],
    ) -> None:
        self.model = model
        self.record = record
        self.source_dir_provider = source_dir_provider
        self.approval_gate = approval_gate
        self.env = dict(env)
        self.root = root
        self.log = log
        self.on_update = on_update
        self.resolve_reference = resolve_reference
        self.base_env = base_env
        self.artifacts: dict[str, Path] = {}
        self.revisions: dict[str, str] = {}  # artifact -> commit id, when the source said
        self.source_namespaces = {
            a.namespace for s in model.stages for a in s.actions if isinstance(a, SourceAction) and a.namespace
        }
        self.namespaces: dict[str, dict[str, str]] = {
            "codepipeline": {"PipelineExecutionId": record.execution_id},
            "variables": dict(variables),
        }

    def update(self) -> None:
        if self.on_update is not None:
            self.on_update(self.record.model_copy(deep=True))

    def run(self) -> ExecutionRecord:
        record = self.record
        self.log(f"{self.model.name}: execution {record.execution_id} started")
        self.update()
        try:
            for stage in self.model.stages:
                if not self.run_stage(stage):
                    break
            else:
                record.status = "Succeeded"
        except BaseException:
            record.status = "Stopped"
            record.failure = record.failure or "stopped before it finished"
            for srec in record.stages:
                for arec in srec.actions:
                    if arec.status == "InProgress":
                        arec.status, arec.message = "Failed", "stopped"
                        _finish(arec)
                if srec.status == "InProgress":
                    srec.status = "Failed"
                    _finish(srec)
            _finish(record)
            self.update()
            raise
        _finish(record)
        self.log(f"{self.model.name}: execution {record.execution_id} {record.status}")
        self.update()
        return record

    def run_stage(self, stage: PipelineStage) -> bool:
        srec = self.record.stage(stage.name)
        srec.status, srec.started_at = "InProgress", _now()
        self.update()
        ok = True
        # Actions of one RunOrder run side by side on CodePipeline: all of them finish before the
        # stage fails. Here they run one after the other, in template order.
        for _order, group in groupby(stage.actions, key=lambda a: a.run_order):
            results = [self.run_action(stage, action) for action in group]
            if not all(results):
                ok = False
                break
        srec.status = "Succeeded" if ok else "Failed"
        _finish(srec)
        self.update()
        return ok

    def run_action(self, stage: PipelineStage, action: Action) -> bool:
        arec = self.record.stage(stage.name).action(action.name)
        arec.status, arec.started_at = "InProgress", _now()
        label = f"{stage.name}/{action.name}"
        self.log(f"{label}: {action.category}/{action.provider} started")
        self.update()
        try:
            if isinstance(action, SourceAction):
                arec.output_variables = self.source(action)
            elif isinstance(action, CodeBuildAction):
                arec.output_variables = self.codebuild(stage, action, arec)
            else:
                arec.message = self.approval(stage, action)
            arec.status = "Succeeded"
        except (_ActionFailed, GitopsError, OSError) as exc:
            arec.status = exc.status if isinstance(exc, _ActionFailed) else "Failed"
            arec.message = str(exc)
            if self.record.failed_action is None:
                record = self.record
                record.status = "Rejected" if arec.status == "Rejected" else "Failed"
                record.failed_stage, record.failed_action = stage.name, action.name
                record.failure = f"stage '{stage.name}' action '{action.name}': {arec.message}"
        if action.namespace:
            self.namespaces[action.namespace] = dict(arec.output_variables)
        _finish(arec)
        self.log(f"{label}: {arec.status}" + (f": {arec.message}" if arec.message else ""))
        self.update()
        return arec.status == "Succeeded"

    def substitute(self, text: str, where: str) -> str:
        def one(match: re.Match) -> str:
            namespace, name = match.groups()
            values = self.namespaces.get(namespace)
            if values is None or name not in values:
                why = " (the source provider gave no such variable)" if namespace in self.source_namespaces else ""
                raise _ActionFailed(f"{where}: cannot resolve the variable #{{{namespace}.{name}}}{why}")
            return values[name]

        return _VARIABLE.sub(one, text)

    def source(self, action: SourceAction) -> dict[str, str]:
        provided = self.source_dir_provider()
        directory, given = (
            (provided.directory, dict(provided.variables)) if isinstance(provided, SourceOutput) else (provided, {})
        )
        directory = Path(directory)
        if not directory.is_dir():
            raise _ActionFailed(f"the source directory {directory} does not exist")
        (output,) = action.output_artifacts
        dest = self.root / "artifacts" / output
        # CODE_ZIP carries the files only; CODEBUILD_CLONE_REF lets the build see the git history.
        keep_git = action.output_format == "CODEBUILD_CLONE_REF"
        shutil.copytree(directory, dest, symlinks=True, ignore=None if keep_git else shutil.ignore_patterns(".git"))
        self.artifacts[output] = dest
        if "CommitId" in given:
            self.revisions[output] = given["CommitId"]
        return {"RepositoryName": action.repository, "BranchName": action.branch, **given}

    def build_env(self, action: CodeBuildAction, where: str) -> dict[str, str]:
        values: dict[str, str] = {}
        for var in action.env_vars:
            value = self.substitute(var.value, f"{where}: environment variable {var.name}")
            if var.type != "PLAINTEXT":
                kind = "parameter-store" if var.type == "PARAMETER_STORE" else "secrets-manager"
                if self.resolve_reference is None:
                    raise _ActionFailed(f"environment variable {var.name}: no resolver for {var.type} on this target")
                value = self.resolve_reference(kind, value)
            values[var.name] = value
        return values

    def codebuild(self, stage: PipelineStage, action: CodeBuildAction, arec: ActionRecord) -> dict[str, str]:
        where = f"{self.model.template_path}: stage '{stage.name}' action '{action.name}'"
        base = self.root / "actions" / stage.name / action.name
        src = base / "src"
        shutil.copytree(self.artifacts[action.primary_source], src, symlinks=True)
        extra = {}
        for name in action.input_artifacts:
            if name != action.primary_source:
                copy = base / f"src_{name}"
                shutil.copytree(self.artifacts[name], copy, symlinks=True)
                extra[f"CODEBUILD_SRC_DIR_{name}"] = str(copy)
        if action.buildspec is not None:
            spec = action.buildspec
        else:
            assert action.buildspec_path is not None
            spec = load_buildspec(src / action.buildspec_path)
        env = {
            **self.build_env(action, where),
            **self.env,
            **extra,
            "CODEBUILD_INITIATOR": f"codepipeline/{self.model.name}",
            "CODEBUILD_BUILD_ID": f"{action.project}:{uuid.uuid4()}",
        }
        if action.primary_source in self.revisions:
            env["CODEBUILD_RESOLVED_SOURCE_VERSION"] = self.revisions[action.primary_source]
        result = run_buildspec(
            spec,
            src,
            env,
            log=self.log,
            log_prefix=f"{stage.name}/{action.name} ",
            output_dir=base / "out",
            timeout_seconds=action.timeout_minutes * 60,
            base_env=self.base_env,
            resolve_reference=self.resolve_reference,
        )
        arec.build = result
        if not result.succeeded:
            raise _ActionFailed(f"build of project {action.project} failed in {result.failed_phase}: {result.message}")
        for index, name in enumerate(action.output_artifacts):
            produced = result.secondary_artifact_dirs.get(name) or (result.artifact_dir if index == 0 else None)
            if produced is None:
                raise _ActionFailed(f"output artifact '{name}': the buildspec's artifacts section does not produce it")
            self.artifacts[name] = produced
        return dict(result.exported_variables)

    def approval(self, stage: PipelineStage, action: ApprovalAction) -> str:
        where = f"{self.model.template_path}: stage '{stage.name}' action '{action.name}'"
        custom = self.substitute(action.custom_data, f"{where}: CustomData") if action.custom_data else None
        decision, summary = self.approval_gate(stage.name, action.name, custom)
        if decision == "Approved":
            return summary
        if decision == "Rejected":
            raise _ActionFailed(f"rejected: {summary}" if summary else "rejected", status="Rejected")
        raise PipelineRunnerError(f"{where}: the approval gate answered {decision!r}, not 'Approved' or 'Rejected'")


def run_pipeline(
    model: PipelineModel,
    *,
    source_dir_provider: SourceProvider,
    approval_gate: ApprovalGate,
    env: Mapping[str, str],
    workdir: Path,
    log: Log = print,
    execution_id: str | None = None,
    variables: Mapping[str, str] | None = None,
    on_update: Callable[[ExecutionRecord], None] | None = None,
    resolve_reference: ReferenceResolver | None = None,
    base_env: Mapping[str, str] | None = None,
) -> ExecutionRecord:
    """Run the pipeline's stages in order; the first failed or rejected action ends the execution.

    - source_dir_provider() returns the checkout of the env repository's head: a SourceOutput
      with its CommitId etc. (a bare Path gives no source variables, so a template that uses
      #{SourceVariables.CommitId} fails); its files, without .git, become the output artifact.
    - CodeBuild actions run their buildspec in a fresh copy of their primary input artifact
      (CODEBUILD_SRC_DIR) under workdir/<execution id>/. Environment, lowest precedence first:
      base_env (default: this process's), the buildspec's variables, the project's variables,
      the action's, `env` (so a local target can never be pointed elsewhere by a template), then
      CODEBUILD_INITIATOR, CODEBUILD_BUILD_ID and CODEBUILD_RESOLVED_SOURCE_VERSION.
    - approval_gate(stage, action, custom_data) returns ("Approved" | "Rejected", summary); it may block.
    - on_update(record) is called with a copy of the record at every change (to persist it, so
      that another process sees the pending approval).
    The returned record's status is Succeeded, Failed or Rejected; `failure` names the stage and action.
    """
    unknown = sorted(set(variables or {}) - set(model.variables))
    if unknown:
        raise PipelineRunnerError(f"{model.template_path}: pipeline {model.name} declares no variable '{unknown[0]}'")
    if execution_id is not None:
        _name(execution_id, "execution id", f"{model.template_path}: pipeline {model.name}")
    record = ExecutionRecord.new(model, execution_id or str(uuid.uuid4()))
    root = workdir / record.execution_id
    try:
        root.mkdir(parents=True, exist_ok=False)
    except FileExistsError as exc:
        raise PipelineRunnerError(f"{root}: already exists; an execution id is used once") from exc
    execution = _Execution(
        model,
        record,
        source_dir_provider=source_dir_provider,
        approval_gate=approval_gate,
        env=env,
        root=root,
        log=log,
        on_update=on_update,
        resolve_reference=resolve_reference,
        base_env=base_env,
        variables={**model.variables, **(variables or {})},
    )
    return execution.run()
