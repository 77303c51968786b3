"""Reading a synthesized template's pipeline: its stages in order and each action by its registered kind.

The same stage order and the same buildspecs as AWS runs (docs/design.md §5), read from the
template CDK synthesized, with its intrinsics resolved as gitops.local.codepipeline.intrinsics
says. Each action's ActionTypeId picks its kind in the registry (actions/ACTION_KINDS); an
action of any other type is refused, naming the supported ones.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from itertools import groupby
from pathlib import Path
from typing import Any

from gitops.local.codepipeline.actions import ACTION_KINDS
from gitops.local.codepipeline.intrinsics import Intrinsics
from gitops.local.codepipeline.model import (
    Action,
    PipelineModel,
    PipelineRunnerError,
    PipelineStage,
    check_name,
    require,
)
from gitops.local.codepipeline.registry import ActionKinds, ActionTemplate

PIPELINE_TYPE = "AWS::CodePipeline::Pipeline"


def _artifact_names(raw: Any, key: str, where: str) -> tuple[str, ...]:
    items = raw.get(key) or []
    if not isinstance(items, list):
        raise PipelineRunnerError(f"{where}: '{key}' must be a list")
    return tuple(check_name(item.get("Name") if isinstance(item, dict) else None, "artifact", where) for item in items)


def _read_action(raw: Any, where: str, intr: Intrinsics, kinds: ActionKinds) -> Action:
    if not isinstance(raw, dict):
        raise PipelineRunnerError(f"{where}: an action must be a mapping")
    name = check_name(raw.get("Name"), "action name", where)
    where = f"{where} action '{name}'"
    type_id = require(raw, "ActionTypeId", dict, where)
    category, owner, provider = (type_id.get(k) for k in ("Category", "Owner", "Provider"))
    run_order = intr.resolve(raw.get("RunOrder", 1), where)
    if not isinstance(run_order, int) or isinstance(run_order, bool) or not 1 <= run_order <= 999:
        raise PipelineRunnerError(f"{where}: RunOrder must be an integer from 1 to 999, got {run_order!r}")
    config = raw.get("Configuration") or {}
    if not isinstance(config, dict):
        raise PipelineRunnerError(f"{where}: Configuration must be a mapping")
    namespace = raw.get("Namespace")
    if namespace is not None:
        namespace = check_name(namespace, "namespace", where)
    inputs = _artifact_names(raw, "InputArtifacts", where)
    outputs = _artifact_names(raw, "OutputArtifacts", where)
    kind = kinds.find(category, owner, provider, where)
    template = ActionTemplate(
        name=name,
        category=category,
        owner=owner,
        provider=provider,
        run_order=run_order,
        namespace=namespace,
        input_artifacts=inputs,
        output_artifacts=outputs,
        configuration=config,
        where=where,
        intrinsics=intr,
        kind=kind,
    )
    return kind.read(template)


def _check_structure(stages: list[PipelineStage], where: str) -> None:
    """What CodePipeline enforces and moto does not: source first, artifacts produced before use."""
    produced: set[str] = set()
    namespaces: set[str] = set()
    for index, stage in enumerate(stages):
        at = f"{where} stage '{stage.name}'"
        sources = [a for a in stage.actions if a.category == "Source"]
        if index == 0 and len(sources) != len(stage.actions):
            raise PipelineRunnerError(f"{at}: the first stage may hold only source actions")
        if index > 0 and sources:
            raise PipelineRunnerError(f"{at} action '{sources[0].name}': source actions belong in the first stage")
        names = [a.name for a in stage.actions]
        if len(set(names)) != len(names):
            raise PipelineRunnerError(f"{at}: action names must be unique within a stage")
        for _order, same_order in groupby(stage.actions, key=lambda a: a.run_order):
            group = list(same_order)
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
    kinds: ActionKinds = ACTION_KINDS,
) -> PipelineModel:
    """The pipeline of a synthesized template: stages in order, actions by RunOrder, buildspecs parsed.

    logical_id picks the pipeline when the template has several; kinds are the action kinds it may
    hold (default: every registered one). Any problem raises PipelineRunnerError naming the
    template and the stage/action.
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
    intr = Intrinsics(template, parameters or {}, pseudo_parameters or {})
    props = resources[lid].get("Properties") or {}
    name = intr.text(props["Name"], where) if "Name" in props else lid
    raw_stages = props.get("Stages")
    if not isinstance(raw_stages, list) or len(raw_stages) < 2:
        raise PipelineRunnerError(f"{where}: Stages must list at least two stages")
    stages: list[PipelineStage] = []
    for raw in raw_stages:
        stage_name = check_name(raw.get("Name") if isinstance(raw, dict) else None, "stage name", where)
        at = f"{where} stage '{stage_name}'"
        if stage_name in (s.name for s in stages):
            raise PipelineRunnerError(f"{at}: stage names must be unique")
        raw_actions = raw.get("Actions")
        if not isinstance(raw_actions, list) or not raw_actions:
            raise PipelineRunnerError(f"{at}: Actions must list at least one action")
        actions = [_read_action(item, at, intr, kinds) for item in raw_actions]
        actions.sort(key=lambda a: a.run_order)  # stable: template order within a RunOrder
        stages.append(PipelineStage(stage_name, tuple(actions)))
    _check_structure(stages, where)
    variables = {}
    for i, var in enumerate(props.get("Variables") or []):
        at = f"{where}: Variables[{i}]"
        variables[require(var, "Name", str, at)] = intr.text(var.get("DefaultValue", ""), at)
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
