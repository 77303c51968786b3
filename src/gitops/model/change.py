"""What a release changes about the served model: package old -> new, artifact, image and every metric."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from gitops.config import StageConfig
from gitops.model.pin import RELEASE_MODEL, ModelPin, ServedModel, load_release_pin
from gitops.target import Target


@dataclass
class ModelChange:
    before: str  # one line per side: "<group>/<version> sha256 <12> auc <x>" or "none pinned (no endpoint)"
    after: str
    package: tuple[str | None, str | None]
    lines: list[str] = field(default_factory=list)  # "AUC 0.8812 -> 0.9034", "image ... -> ..."

    @property
    def changed(self) -> bool:
        return self.before != self.after or bool(self.lines)

    def headline(self) -> str:
        return f"model: {self.before} -> {self.after}" if self.changed else f"model: {self.after} (unchanged)"

    def to_dict(self) -> dict:
        return asdict(self)


def _metric_lines(old: ServedModel | None, new: ServedModel | None) -> list[str]:
    names = sorted(set(old.metrics if old else {}) | set(new.metrics if new else {}))
    lines = []
    for name in names:
        before = f"{old.metrics[name]:.4f}" if old and name in old.metrics else "none"
        after = f"{new.metrics[name]:.4f}" if new and name in new.metrics else "none"
        if before != after:
            lines.append(f"{name.upper() if name == 'auc' else name} {before} -> {after}")
    return lines


def model_change(old: ModelPin | None, new: ModelPin) -> ModelChange:
    """The change from old (None: a stage holding no release) to new, field by field."""
    before, after = (old.model if old else None), new.model
    lines = []
    if (before.package_arn if before else None) != (after.package_arn if after else None):
        lines.append(f"package {before.package_arn if before else 'none'} -> {after.package_arn if after else 'none'}")
    if before and after and before.image != after.image:
        lines.append(f"image {before.image} -> {after.image}")
    if before and after and before.artifact != after.artifact:
        lines.append(f"artifact sha256 {before.artifact.sha256[:12]} -> {after.artifact.sha256[:12]}")
    lines += _metric_lines(before, after)
    return ModelChange(
        old.describe() if old else "none (no release)",
        new.describe(),
        (before.package_arn if before else None, after.package_arn if after else None),
        lines,
    )


def release_model_change(base: Path | None, head: Path) -> ModelChange:
    """Between two releases' model.json; a release rendered before model.json existed counts as none pinned."""
    old = None
    if base is not None:
        old = load_release_pin(base) if (base / RELEASE_MODEL).is_file() else ModelPin(model=None)
    return model_change(old, load_release_pin(head))


def held_model(target: Target, config: StageConfig) -> str:
    """The model a stage's env repository holds now, one line ("no release" when it holds none)."""
    import tempfile

    from gitops.errors import GitopsError
    from gitops.promotion import envrepo

    with tempfile.TemporaryDirectory(prefix="gitops-held-") as tmp:
        try:
            held = envrepo.copy_head_release(target.env_repo_url(config), config.stage, Path(tmp) / "release")
        except GitopsError as exc:  # a tampered head: status says so for this stage and goes on
            return f"unreadable ({str(exc)[:80]})"
        if held is None:
            return "no release"
        if not (held / RELEASE_MODEL).is_file():
            return "none pinned (a release from before model pins)"
        return load_release_pin(held).describe()
