"""One embedded dev stage for the recovery tests: deployed, holding data, backed up once (module scope)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from recovery_release import ROOT, STAGES, make_release

from gitops.deploy.apply import deploy_stage
from gitops.local.embedded import seed_env_repo, start_server, stop_server
from gitops.local.postgres import ThrowawayPostgres
from gitops.promotion.promote import publish_release
from gitops.recovery import drill_data
from gitops.recovery.backup import BackupResult, backup_stage
from gitops.recovery.drill import reset_moto
from gitops.recovery.inventory import StageContext
from gitops.target import Target


@dataclass
class BackedUpStage:
    ctx: StageContext
    postgres: ThrowawayPostgres
    backup: BackupResult
    release: Path
    tmp: Path

    def wipe(self) -> None:
        """What aws-nuke leaves: moto's state reset, the env repository gone, the app database empty."""
        assert self.ctx.target.endpoint_url and self.ctx.target.local_dir
        reset_moto(self.ctx.target.endpoint_url)
        shutil.rmtree(self.ctx.target.local_dir / "repos", ignore_errors=True)
        drill_data.drop_app_database(self.postgres, self.ctx)
        self.ctx.forget_session()
        self.ctx.reset_database_password = drill_data.password_resetter(self.postgres, self.ctx)

    def copy_of_backup(self, dest: Path) -> Path:
        return Path(shutil.copytree(self.backup.path, dest / self.backup.path.name))


@pytest.fixture(scope="module")
def backed_up(tmp_path_factory) -> Iterator[BackedUpStage]:
    tmp = tmp_path_factory.mktemp("recovery")
    local_dir = tmp / "target"
    server = start_server(local_dir)
    target = Target("local", local_dir.resolve(), server.endpoint_url)
    ctx = StageContext(STAGES["dev"], target)
    release = make_release(tmp / "release")
    try:
        with ThrowawayPostgres() as postgres:
            seed_env_repo(ROOT, local_dir, ctx.stage)
            publish_release(release, "dev", target)
            deploy_stage(release, "dev", target).raise_for_failure()
            drill_data.write_offline_store(ctx, ROOT)
            drill_data.register_models(ctx)
            drill_data.write_app_rows(ctx, postgres, ROOT / "app", tmp / "app")
            result = backup_stage(ctx, tmp / "backups")
            yield BackedUpStage(ctx, postgres, result, release, tmp)
    finally:
        stop_server(local_dir)
