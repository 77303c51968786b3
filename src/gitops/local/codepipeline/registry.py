"""The action kind registry, and the contract a kind implements: what its reader and its runner are given."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops.local.buildspec_runner import ReferenceResolver
from gitops.local.codepipeline.intrinsics import Intrinsics
from gitops.local.codepipeline.model import Action, PipelineRunnerError, require
from gitops.local.codepipeline.record import ActionRecord, ActionStatus
from gitops.progress import Progress


@dataclass(frozen=True)
class ActionTemplate:
    """One action as its template writes it, with what every action has already read and checked."""

    name: str
    category: str
    owner: str
    provider: str
    run_order: int
    namespace: str | None
    input_artifacts: tuple[str, ...]
    output_artifacts: tuple[str, ...]
    configuration: dict
    where: str  # "<template>: pipeline <id> stage '<stage>' action '<name>'": how messages name it
    intrinsics: Intrinsics
    kind: ActionKind

    def common(self) -> dict[str, Any]:
        """The fields of model.Action, for the kind's own Action subclass."""
        return {
            "name": self.name,
            "category": self.category,
            "owner": self.owner,
            "provider": self.provider,
            "run_order": self.run_order,
            "namespace": self.namespace,
            "input_artifacts": self.input_artifacts,
            "output_artifacts": self.output_artifacts,
            "kind": self.kind,
        }

    def text(self, key: str, default: str | None = None) -> str:
        """A Configuration key, a string or an intrinsic that resolves to one; required unless given a default."""
        if default is not None:
            return self.intrinsics.text(self.configuration.get(key, default), self.where)
        return self.intrinsics.text(require(self.configuration, key, (str, dict), self.where), self.where)

    def optional_text(self, key: str) -> str | None:
        value = self.configuration.get(key)
        return None if value is None else self.intrinsics.text(value, self.where)

    def error(self, message: str) -> PipelineRunnerError:
        return PipelineRunnerError(f"{self.where}: {message}")


@dataclass(frozen=True)
class SourceOutput:
    """What a source provider may return instead of a bare directory: the checkout and its variables.

    variables are the source action's output variables, as CodeCommit sets them (CommitId,
    CommitMessage, AuthorDate, ...); RepositoryName and BranchName are filled in from the template.
    """

    directory: Path
    variables: Mapping[str, str] = field(default_factory=dict)


SourceProvider = Callable[[], Path | SourceOutput]
# (stage, action, custom data) -> ("Approved" | "Rejected", summary); it may block.
ApprovalGate = Callable[[str, str, str | None], tuple[str, str]]


@dataclass
class ActionContext:
    """What the run loop lends one action's runner: the execution's artifacts and the injected services."""

    pipeline_name: str
    stage: str
    where: str  # "<template>: stage '<stage>' action '<name>'"
    root: Path  # the execution's working directory
    artifacts: dict[str, Path]  # artifact name -> its directory; a runner adds what it produces
    revisions: dict[str, str]  # artifact name -> the commit it holds, when its source said
    record: ActionRecord  # a runner may attach what it produced (a build's result) before it fails
    substitute: Callable[[str, str], str]  # (text, where) -> text with #{Namespace.Name} resolved
    source_dir_provider: SourceProvider
    approval_gate: ApprovalGate
    env: Mapping[str, str]  # the target's variables: they win over any the template sets
    base_env: Mapping[str, str] | None
    resolve_reference: ReferenceResolver | None
    log: Progress


@dataclass(frozen=True)
class ActionOutcome:
    """A succeeded action: its output variables (for #{Namespace.Name}) and a message for the record."""

    output_variables: Mapping[str, str] = field(default_factory=dict)
    message: str = ""


class ActionFailed(Exception):
    """A runner ending its action as Failed, or as Rejected by an approver."""

    def __init__(self, message: str, status: ActionStatus = "Failed") -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ActionKind:
    """One ActionTypeId the local runner supports: its reader (template -> action) and its runner."""

    categories: tuple[str, ...]
    owner: str
    provider: str
    read: Callable[[ActionTemplate], Action]
    run: Callable[[Any, ActionContext], ActionOutcome]  # called with the Action its read returned

    @property
    def label(self) -> str:
        return f"{'|'.join(self.categories)}/{self.owner}/{self.provider}"

    def matches(self, category: object, owner: object, provider: object) -> bool:
        return category in self.categories and (owner, provider) == (self.owner, self.provider)


class ActionKinds:
    """The registered kinds; an action's ActionTypeId picks one, or the action is refused naming them all."""

    def __init__(self, kinds: Iterable[ActionKind]) -> None:
        registered: list[ActionKind] = []
        for kind in kinds:
            for taken in registered:
                if any(taken.matches(category, kind.owner, kind.provider) for category in kind.categories):
                    raise ValueError(f"action kind {kind.label} overlaps the registered {taken.label}")
            registered.append(kind)
        self.kinds = tuple(registered)

    def with_kind(self, kind: ActionKind) -> ActionKinds:
        """These kinds and one more."""
        return ActionKinds([*self.kinds, kind])

    @property
    def supported(self) -> str:
        return ", ".join(kind.label for kind in self.kinds)

    def find(self, category: object, owner: object, provider: object, where: str) -> ActionKind:
        found = next((kind for kind in self.kinds if kind.matches(category, owner, provider)), None)
        if found is None:
            raise PipelineRunnerError(
                f"{where}: action type {category}/{owner}/{provider} is not supported by the local runner"
                f" (supported: {self.supported})"
            )
        return found
