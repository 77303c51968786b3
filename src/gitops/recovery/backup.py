"""`gitops backup`: every inventory kind of one stage into a new backup set, its manifest written last."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from gitops.progress import Progress
from gitops.promotion import envrepo
from gitops.recovery.inventory import ItemKind, Skipped, StageContext, all_kinds
from gitops.recovery.manifest import (
    OBJECTS_DIR,
    BackupError,
    BackupManifest,
    KindSummary,
    ManifestEntry,
    write_manifest,
)


@dataclass
class BackupResult:
    path: Path
    manifest: BackupManifest


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%S%fZ")


def backup_stage(
    ctx: StageContext, destination: Path, *, kinds: list[ItemKind] | None = None, progress: Progress | None = None
) -> BackupResult:
    """Take a backup set of the stage under destination/<stage>-<UTC time>/; the manifest is its last file.

    The stage must hold an intact release (its env repo head names it): a backup records what to redeploy.
    A failure part-way leaves a set without a manifest, which no restore accepts.
    """
    say = progress or (lambda _m: None)
    kinds = kinds if kinds is not None else all_kinds()
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    head = envrepo.head_of(ctx.env_repo_url)
    release = envrepo.require_intact(ctx.env_repo_url, head, ctx.stage.stage)
    backup_dir = destination / f"{ctx.stage.stage}-{_stamp(started)}"
    if backup_dir.exists():
        raise BackupError(f"{backup_dir}: already exists; backups never overwrite one another")
    objects = backup_dir / OBJECTS_DIR
    objects.mkdir(parents=True)
    summaries: dict[str, KindSummary] = {}
    entries: list[ManifestEntry] = []
    for kind in kinds:
        say(f"backup {ctx.stage.stage}: {kind.name}")
        taken = kind.backup(ctx, objects)
        if isinstance(taken, Skipped):
            summaries[kind.name] = KindSummary(status="skipped", reason=taken.reason)
            say(f"backup {ctx.stage.stage}: {kind.name} skipped: {taken.reason}")
            continue
        summaries[kind.name] = KindSummary(status="backed-up", count=len(taken))
        entries += taken
    finished = datetime.now(UTC)
    manifest = BackupManifest(
        stage=ctx.stage.stage,
        account=ctx.stage.account,
        region=ctx.stage.region,
        target=ctx.target.kind,
        release_id=release.release_id,
        started_at=started.isoformat(),
        finished_at=finished.isoformat(),
        seconds=round(time.perf_counter() - t0, 3),
        kinds=summaries,
        entries=entries,
    )
    write_manifest(backup_dir, manifest)
    say(f"backup {ctx.stage.stage}: {len(entries)} objects, manifest written last: {backup_dir}")
    return BackupResult(backup_dir, manifest)
