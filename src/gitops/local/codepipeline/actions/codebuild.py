"""Build|Test/AWS/CodeBuild: the project's buildspec run in a fresh copy of the primary input artifact."""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from gitops.local.buildspec_runner import run_buildspec
from gitops.local.codepipeline.intrinsics import Intrinsics
from gitops.local.codepipeline.model import Action, PipelineRunnerError, require
from gitops.local.codepipeline.registry import ActionContext, ActionFailed, ActionKind, ActionOutcome, ActionTemplate
from gitops.release.buildspec import Buildspec, BuildspecError, load_buildspec, parse_buildspec

PROJECT_TYPE = "AWS::CodeBuild::Project"
DEFAULT_BUILDSPEC = "buildspec.yml"
DEFAULT_TIMEOUT_MINUTES = 60


@dataclass(frozen=True)
class EnvVar:
    name: str
    value: str
    type: Literal["PLAINTEXT", "PARAMETER_STORE", "SECRETS_MANAGER"] = "PLAINTEXT"


@dataclass(frozen=True, kw_only=True)
class CodeBuildAction(Action):
    project: str  # physical name, or a placeholder when CloudFormation names it
    project_logical_id: str
    buildspec: Buildspec | None  # inline in the project
    buildspec_path: str | None  # else a file in the primary source
    env_vars: tuple[EnvVar, ...]  # the project's, then the action's (the action's win)
    primary_source: str
    timeout_minutes: int


def _project_env(project: dict, where: str, intr: Intrinsics) -> list[EnvVar]:
    raw = (project.get("Environment") or {}).get("EnvironmentVariables") or []
    if not isinstance(raw, list):
        raise PipelineRunnerError(f"{where}: Environment.EnvironmentVariables must be a list")
    out = []
    for i, item in enumerate(raw):
        at = f"{where}: Environment.EnvironmentVariables[{i}]"
        name = intr.text(require(item, "Name", (str, dict), at), at)
        out.append(EnvVar(name, intr.text(item.get("Value", ""), at), _env_type(item.get("Type", "PLAINTEXT"), at)))
    return out


def _action_env(config: dict, where: str, intr: Intrinsics) -> list[EnvVar]:
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
        name = require(item, "name", str, f"{at}[{i}]")
        value = require(item, "value", str, f"{at}[{i}]")
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


def _project_buildspec(project: dict, lid: str, where: str, intr: Intrinsics) -> tuple[Buildspec | None, str | None]:
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


def read(template: ActionTemplate) -> CodeBuildAction:
    where, config, intr = template.where, template.configuration, template.intrinsics
    resources = intr.resources
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
    inputs = template.input_artifacts
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
        **template.common(),
        project=intr.text({"Ref": lid}, where),
        project_logical_id=lid,
        buildspec=buildspec,
        buildspec_path=buildspec_path,
        env_vars=_merge_env(_project_env(props, f"{where}: project {lid}", intr), _action_env(config, where, intr)),
        primary_source=primary,
        timeout_minutes=timeout,
    )


def _build_env(action: CodeBuildAction, context: ActionContext) -> dict[str, str]:
    values: dict[str, str] = {}
    for var in action.env_vars:
        value = context.substitute(var.value, f"{context.where}: environment variable {var.name}")
        if var.type != "PLAINTEXT":
            kind = "parameter-store" if var.type == "PARAMETER_STORE" else "secrets-manager"
            if context.resolve_reference is None:
                raise ActionFailed(f"environment variable {var.name}: no resolver for {var.type} on this target")
            value = context.resolve_reference(kind, value)
        values[var.name] = value
    return values


def run(action: CodeBuildAction, context: ActionContext) -> ActionOutcome:
    base = context.root / "actions" / context.stage / action.name
    src = base / "src"
    shutil.copytree(context.artifacts[action.primary_source], src, symlinks=True)
    extra = {}
    for name in action.input_artifacts:
        if name != action.primary_source:
            copy = base / f"src_{name}"
            shutil.copytree(context.artifacts[name], copy, symlinks=True)
            extra[f"CODEBUILD_SRC_DIR_{name}"] = str(copy)
    if action.buildspec is not None:
        spec = action.buildspec
    else:
        assert action.buildspec_path is not None
        spec = load_buildspec(src / action.buildspec_path)
    env = {
        **_build_env(action, context),
        **context.env,
        **extra,
        "CODEBUILD_INITIATOR": f"codepipeline/{context.pipeline_name}",
        "CODEBUILD_BUILD_ID": f"{action.project}:{uuid.uuid4()}",
    }
    if action.primary_source in context.revisions:
        env["CODEBUILD_RESOLVED_SOURCE_VERSION"] = context.revisions[action.primary_source]
    result = run_buildspec(
        spec,
        src,
        env,
        log=context.log,
        log_prefix=f"{context.stage}/{action.name} ",
        output_dir=base / "out",
        timeout_seconds=action.timeout_minutes * 60,
        base_env=context.base_env,
        resolve_reference=context.resolve_reference,
    )
    context.record.build = result
    if not result.succeeded:
        raise ActionFailed(f"build of project {action.project} failed in {result.failed_phase}: {result.message}")
    for index, name in enumerate(action.output_artifacts):
        produced = result.secondary_artifact_dirs.get(name) or (result.artifact_dir if index == 0 else None)
        if produced is None:
            raise ActionFailed(f"output artifact '{name}': the buildspec's artifacts section does not produce it")
        context.artifacts[name] = produced
    return ActionOutcome(dict(result.exported_variables))


KIND = ActionKind(("Build", "Test"), "AWS", "CodeBuild", read, run)
