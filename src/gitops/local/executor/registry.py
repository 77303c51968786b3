"""The step kind registry, and the contract a kind implements: its check before the run and its runner."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops.local.executor.errors import UnsupportedStep
from gitops.progress import Progress


@dataclass(frozen=True)
class DefinitionStep:
    """One step of the definition as written (expressions unresolved); nested steps name their condition."""

    name: str
    type: str
    arguments: dict
    raw: dict
    parent: str | None = None  # the ConditionStep whose branch holds this step
    branch: str | None = None  # "IfSteps" | "ElseSteps"

    @property
    def where(self) -> str:
        return f"step '{self.name}' ({self.type})"


@dataclass
class StepContext:
    """What the run loop lends one step's runner."""

    execution_id: str
    pipeline_name: str
    step: DefinitionStep
    arguments: dict  # the step's Arguments, every expression resolved
    workdir: Path  # a fresh directory of this step: its /opt/ml lives under it
    s3: Any  # boto3 S3 client of the embedded target
    sagemaker: Any  # boto3 SageMaker client of the embedded target
    job_env: Mapping[str, str]  # environment every job process starts from (endpoints, credentials)
    job_python: str  # the interpreter of the pinned job environment (stands in for the image's)
    network_env: Mapping[str, str]  # added for jobs without network isolation (AWS endpoints)
    athena: Callable[[dict, Path], None] | None  # (AthenaDatasetDefinition, local dir): run the query there
    log: Progress


@dataclass(frozen=True)
class StepOutcome:
    """A succeeded step: its properties (what Steps.<name>.* reads) and what the record shows."""

    properties: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    skip: tuple[str, ...] = ()  # steps of a condition's branch not taken


@dataclass(frozen=True)
class StepKind:
    """One definition step Type the executor runs: a check before anything runs, and its runner."""

    type: str
    check: Callable[[DefinitionStep], None]
    run: Callable[[StepContext], StepOutcome]
    # Property names a later step may read from it (first token after Steps.<name>.).
    properties: tuple[str, ...] = ()


class StepKinds:
    """The registered kinds; a step's Type picks one, or the whole definition is refused naming the step."""

    def __init__(self, kinds: Iterable[StepKind]) -> None:
        self.kinds: dict[str, StepKind] = {}
        for kind in kinds:
            if kind.type in self.kinds:
                raise ValueError(f"step kind {kind.type} registered twice")
            self.kinds[kind.type] = kind

    @property
    def supported(self) -> str:
        return ", ".join(sorted(self.kinds))

    def find(self, step: DefinitionStep) -> StepKind:
        kind = self.kinds.get(step.type)
        if kind is None:
            raise UnsupportedStep(
                f"step '{step.name}': type {step.type}: not run locally: the executor runs {self.supported};"
                " nothing ran"
            )
        return kind
