"""The pipeline model the local runner reads from a template: stages of actions, and the names CodePipeline allows."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gitops.errors import GitopsError

if TYPE_CHECKING:
    from gitops.local.codepipeline.registry import ActionKind

_NAME = re.compile(r"^[A-Za-z0-9.@_-]{1,100}$")  # CodePipeline's pattern for stage, action and artifact names


class PipelineRunnerError(GitopsError):
    """A pipeline template cannot be read, or the local runner cannot run one of its actions."""

    hint = "fix the named stage/action in infra/ (then `gitops render`), or the named template"


def check_name(value: Any, what: str, where: str) -> str:
    """value, if CodePipeline accepts it as a stage, action, artifact or namespace name."""
    if not isinstance(value, str) or not _NAME.match(value) or value in (".", ".."):
        raise PipelineRunnerError(f"{where}: {what} {value!r} is not a valid name ([A-Za-z0-9.@_-], 1-100)")
    return value


def require(mapping: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    """mapping[key], if the template gives it with the expected type."""
    value = mapping.get(key) if isinstance(mapping, dict) else None
    if not isinstance(value, kind):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise PipelineRunnerError(f"{where}: '{key}' must be a {expected}, got {value!r}")
    return value


@dataclass(frozen=True, kw_only=True)
class Action:
    """What every action has; each kind's module subclasses it with what its configuration says."""

    name: str
    category: str  # ActionTypeId.Category, e.g. Source, Build, Test, Approval
    owner: str
    provider: str
    run_order: int
    namespace: str | None
    input_artifacts: tuple[str, ...] = ()
    output_artifacts: tuple[str, ...] = ()
    kind: ActionKind = field(repr=False, compare=False)  # the registered kind that read it and runs it


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
