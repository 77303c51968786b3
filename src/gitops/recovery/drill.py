"""`gitops drill`: deploy dev and prod, write real data, back up, wipe, restore, verify; fail if anything is lost.

It runs on its own embedded target (a moto server and env repos under <work>/target), never on the one
`gitops local up` keeps: the wipe resets the server's whole state and deletes the env repositories.
Backups go to <work>/backups, outside what the wipe touches (on AWS: another account, Object Lock).
"""

from __future__ import annotations

import shutil
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops.deploy.apply import deploy_stage
from gitops.errors import GitopsError
from gitops.local.embedded import seed_env_repo, start_server, stop_server
from gitops.local.postgres import ThrowawayPostgres
from gitops.progress import Progress
from gitops.promotion.promote import publish_release
from gitops.recovery import drill_data
from gitops.recovery.backup import backup_stage
from gitops.recovery.inventory import LOST_BY_DESIGN, Difference, StageContext
from gitops.recovery.restore import RestoreReport, compare_stage, restore_stage
from gitops.release.manifest import load_release, load_stage_config_from_release
from gitops.target import Target


class DrillFailed(GitopsError):
    hint = "read the drill's table: every row marked lost should have come back; `--json` has the details"


@dataclass
class StageDrill:
    stage: str
    written: dict[str, int]
    backed_up: dict[str, int]  # kind -> objects in the backup set
    skipped: dict[str, str]  # kind -> why nothing was backed up
    wiped: int  # differences right after the wipe (proof the wipe took the data)
    lost_after_backup: list[Difference]  # written after the backup and absent from it (RPO)
    restore: RestoreReport
    backup_dir: str


@dataclass
class DrillReport:
    release_id: str
    stages: list[StageDrill] = field(default_factory=list)
    rpo_seconds: float = 0.0  # window between the last backup and the wipe
    rto_seconds: float = 0.0  # wipe to every stage restored and verified
    seconds: float = 0.0

    @property
    def lost(self) -> list[str]:
        """What should have come back and did not."""
        found = []
        for s in self.stages:
            found += [f"{s.stage}: {d.kind} {d.name}: {d.detail}" for d in s.restore.differences]
            found += [f"{s.stage}: verify: {p}" for p in s.restore.verify_problems]
            if s.restore.env_head_release_id != s.restore.release_id:
                found.append(f"{s.stage}: env repo head holds {s.restore.env_head_release_id}, not the release")
        return found

    @property
    def rpo_items(self) -> int:
        return sum(len(s.lost_after_backup) for s in self.stages)

    @property
    def ok(self) -> bool:
        return not self.lost and self.rpo_items == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "release_id": self.release_id,
            "ok": self.ok,
            "lost": self.lost,
            "rpo_items": self.rpo_items,
            "rpo_seconds": self.rpo_seconds,
            "rto_seconds": self.rto_seconds,
            "seconds": self.seconds,
            "lost_by_design": [f"{x.what}: {x.why}" for x in LOST_BY_DESIGN],
            "stages": [
                {
                    "stage": s.stage,
                    "written": s.written,
                    "backed_up": s.backed_up,
                    "skipped": s.skipped,
                    "wiped": s.wiped,
                    "backup": s.backup_dir,
                    "restore": s.restore.to_dict(),
                }
                for s in self.stages
            ],
        }


def reset_moto(endpoint_url: str) -> None:
    """moto's own reset API: every account's every resource gone at once, as aws-nuke would leave it."""
    request = urllib.request.Request(f"{endpoint_url}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310 (loopback)
        if resp.status != 200:
            raise DrillFailed(f"{endpoint_url}: moto's reset answered {resp.status}")


def run_drill(root: Path, release_dir: Path, work: Path, *, progress: Progress | None = None) -> DrillReport:
    """The drill on a fresh embedded target under work/; the report says what came back, RPO and RTO."""
    say = progress or (lambda _m: None)
    started = time.perf_counter()
    manifest = load_release(release_dir)
    stages = [load_stage_config_from_release(release_dir, name) for name in manifest.stages]
    local_dir = work / "target"
    shutil.rmtree(local_dir, ignore_errors=True)
    backups = work / "backups"
    report = DrillReport(manifest.release_id)
    server = start_server(local_dir)
    target = Target("local", local_dir.resolve(), server.endpoint_url)
    try:
        with ThrowawayPostgres() as postgres:
            contexts = [StageContext(cfg, target) for cfg in stages]
            written: dict[str, dict[str, int]] = {}
            for ctx in contexts:
                seed_env_repo(root, local_dir, ctx.stage)
                say(f"drill {ctx.stage.stage}: publish and deploy release {manifest.short_id}")
                publish_release(release_dir, ctx.stage.stage, target)
                deploy_stage(release_dir, ctx.stage.stage, target, progress=say).raise_for_failure()
                say(f"drill {ctx.stage.stage}: writing data (features, models, app rows)")
                written[ctx.stage.stage] = {
                    "feature-offline objects": drill_data.write_offline_store(ctx, root),
                    "model packages": drill_data.register_models(ctx),
                    "app rows": drill_data.write_app_rows(ctx, postgres, root / "app", work / "app" / ctx.stage.stage),
                }
            taken = {ctx.stage.stage: backup_stage(ctx, backups, progress=say) for ctx in contexts}
            backed_up_at = time.perf_counter()
            lost_after = {
                ctx.stage.stage: compare_stage(ctx, taken[ctx.stage.stage].path, taken[ctx.stage.stage].manifest)
                for ctx in contexts
            }
            say("drill: WIPE: moto's state reset, env repositories deleted, app databases dropped")
            wipe_at = time.perf_counter()
            report.rpo_seconds = round(wipe_at - backed_up_at, 3)
            reset_moto(target.endpoint_url or "")
            shutil.rmtree(local_dir / "repos")
            for ctx in contexts:
                drill_data.drop_app_database(postgres, ctx)
            wiped = {
                ctx.stage.stage: len(compare_stage(ctx, taken[ctx.stage.stage].path, taken[ctx.stage.stage].manifest))
                for ctx in contexts
            }
            restores = {}
            for ctx in contexts:
                ctx.reset_database_password = drill_data.password_resetter(postgres, ctx)
                ctx.forget_session()
                restores[ctx.stage.stage] = restore_stage(ctx, taken[ctx.stage.stage].path, progress=say)
            report.rto_seconds = round(time.perf_counter() - wipe_at, 2)
            for ctx in contexts:
                name = ctx.stage.stage
                kinds = taken[name].manifest.kinds
                report.stages.append(
                    StageDrill(
                        stage=name,
                        written=written[name],
                        backed_up={k: v.count for k, v in kinds.items() if v.status == "backed-up"},
                        skipped={k: v.reason for k, v in kinds.items() if v.status == "skipped"},
                        wiped=wiped[name],
                        lost_after_backup=lost_after[name],
                        restore=restores[name],
                        backup_dir=str(taken[name].path),
                    )
                )
    finally:
        stop_server(local_dir)
    report.seconds = round(time.perf_counter() - started, 2)
    return report
