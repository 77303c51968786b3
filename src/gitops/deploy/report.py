"""What a deploy did, per stack and pipeline, for the terminal, --json and the pipeline's logs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from gitops.errors import DeployFailed
from gitops.local.projection import DroppedResource


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
    # Embedded target only: live resources read back and put right after the change set (deploy/live.py).
    repaired: list[str] = field(default_factory=list)


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
    model: str | None = None  # the release's pin, one line ("none pinned (no endpoint)" when empty)
    model_artifact: str | None = None  # the stage's copy: "<uri>: in place (...)" | "<uri>: copied from ..."
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
