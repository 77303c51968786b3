"""`gitops restore`: check every byte of a backup set, deploy the release it recorded, put each kind back, compare.

Every step converges: the deploy of the same release changes nothing the second time, and each kind
writes only what differs from the backup, so a restore interrupted anywhere is finished by re-running
it, and a second restore changes nothing.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops.deploy.apply import deploy_stage
from gitops.deploy.verify import verify_stage
from gitops.machine import scratch
from gitops.progress import Progress
from gitops.promotion import envrepo
from gitops.promotion.envrepo import RELEASE_DIR, git
from gitops.recovery.inventory import Difference, ItemKind, StageContext, all_kinds
from gitops.recovery.kinds.env_repo import EnvRepoHistory
from gitops.recovery.manifest import OBJECTS_DIR, BackupError, BackupManifest, check_objects, read_manifest
from gitops.release.manifest import load_release


@dataclass
class KindRestore:
    kind: str
    changed: list[str] = field(default_factory=list)
    unchanged: int = 0
    not_restored: list[str] = field(default_factory=list)


@dataclass
class RestoreReport:
    stage: str
    backup: str
    release_id: str
    checked_bytes: int = 0
    deployed: dict[str, str] = field(default_factory=dict)  # stack -> created | updated | unchanged
    kinds: list[KindRestore] = field(default_factory=list)
    verify_problems: list[str] = field(default_factory=list)
    not_checked: dict[str, list[str]] = field(default_factory=dict)
    differences: list[Difference] = field(default_factory=list)
    env_head_release_id: str | None = None
    seconds: float = 0.0

    @property
    def changes(self) -> list[str]:
        """What this restore wrote: stacks created or updated, and every object a kind put back."""
        stacks = [f"stack {name} {action}" for name, action in self.deployed.items() if action != "unchanged"]
        return stacks + [item for k in self.kinds for item in k.changed]

    @property
    def ok(self) -> bool:
        return not self.verify_problems and not self.differences and self.env_head_release_id == self.release_id

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "backup": self.backup,
            "release_id": self.release_id,
            "ok": self.ok,
            "checked_bytes": self.checked_bytes,
            "deployed": self.deployed,
            "changes": self.changes,
            "kinds": [k.__dict__ for k in self.kinds],
            "verify_problems": self.verify_problems,
            "not_checked": self.not_checked,
            "differences": [d.__dict__ for d in self.differences],
            "env_head_release_id": self.env_head_release_id,
            "seconds": self.seconds,
        }


def release_from_backup(backup_dir: Path, manifest: BackupManifest, into: Path) -> Path:
    """The release the stage held, taken from the env repo bundle at its recorded head and verified byte for byte."""
    bundles = manifest.entries_of(EnvRepoHistory.name)
    if not bundles:
        raise BackupError(f"{backup_dir}: holds no env repository bundle, so no release to redeploy")
    entry = bundles[0]
    with scratch("restore-release") as tmp:
        work = tmp / "work"
        git("clone", "-q", "--no-checkout", str(backup_dir / OBJECTS_DIR / entry.path), str(work))
        git("checkout", "-q", entry.detail["head"], cwd=work)
        shutil.copytree(work / RELEASE_DIR, into)
    found = load_release(into)
    if found.release_id != manifest.release_id:
        raise BackupError(
            f"{backup_dir}: the bundle's head holds release {found.short_id},"
            f" the manifest says {manifest.release_id[:12]}"
        )
    return into


def compare_stage(
    ctx: StageContext, backup_dir: Path, manifest: BackupManifest, kinds: list[ItemKind] | None = None
) -> list[Difference]:
    """Read every kind's live state back and list what differs from the backup."""
    objects = backup_dir / OBJECTS_DIR
    found: list[Difference] = []
    for kind in kinds if kinds is not None else all_kinds():
        entries = manifest.entries_of(kind.name)
        if entries:
            found += kind.compare(ctx, objects, entries)
    return found


def restore_stage(
    ctx: StageContext, backup_dir: Path, *, kinds: list[ItemKind] | None = None, progress: Progress | None = None
) -> RestoreReport:
    """Refuse a set that is incomplete, of another stage, or has one changed byte; else restore it and compare."""
    say = progress or (lambda _m: None)
    t0 = time.perf_counter()
    kinds = kinds if kinds is not None else all_kinds()
    manifest = read_manifest(backup_dir)
    if (manifest.stage, manifest.account) != (ctx.stage.stage, ctx.stage.account):
        raise BackupError(
            f"{backup_dir}: a backup of stage {manifest.stage} ({manifest.account}), not of {ctx.stage.stage}"
            f" ({ctx.stage.account})"
        )
    report = RestoreReport(ctx.stage.stage, str(backup_dir), manifest.release_id)
    say(f"restore {ctx.stage.stage}: checking {len(manifest.entries)} objects' sha256")
    report.checked_bytes = check_objects(backup_dir, manifest)
    objects = backup_dir / OBJECTS_DIR
    with scratch("restore") as tmp:
        release_dir = release_from_backup(backup_dir, manifest, tmp / "release")
        say(f"restore {ctx.stage.stage}: deploying release {manifest.release_id[:12]} (bootstrap included)")
        deployed = deploy_stage(release_dir, ctx.stage.stage, ctx.target, progress=say)
        deployed.raise_for_failure()
        report.deployed = {s.name: s.action for s in deployed.stacks}
        for kind in kinds:
            entries = manifest.entries_of(kind.name)
            if not entries:
                continue
            say(f"restore {ctx.stage.stage}: {kind.name} ({len(entries)} objects)")
            outcome = kind.restore(ctx, objects, entries)
            report.kinds.append(KindRestore(kind.name, outcome.changed, outcome.unchanged, outcome.not_restored))
        say(f"restore {ctx.stage.stage}: verify and data comparison")
        verified = verify_stage(release_dir, ctx.stage.stage, ctx.target)
        report.verify_problems = verified.problems
        report.not_checked = verified.not_checked
    report.differences = compare_stage(ctx, backup_dir, manifest, kinds)
    _, held = envrepo.current_release(ctx.env_repo_url)
    report.env_head_release_id = held.release_id if held else None
    report.seconds = round(time.perf_counter() - t0, 2)
    return report
