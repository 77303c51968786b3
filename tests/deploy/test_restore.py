"""After the embedded server restarts, what the env repositories hold is deployed again (and verifies)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_deploy import make_release, stage_config

from gitops.deploy.verify import verify_stage
from gitops.local.embedded import seed_env_repo, start_server, stop_server
from gitops.local.restore import restore_from_env_repos
from gitops.promotion.envrepo import push_release
from gitops.target import Target

ROOT = Path(__file__).resolve().parents[2]


def _seeded(local_dir: Path) -> str:
    """The stage's env repository as `gitops local up` seeds it (from seed_repo/)."""
    return str(seed_env_repo(ROOT, local_dir, stage_config()))


@pytest.mark.integration  # two moto servers, a deploy and a verify
def test_a_restarted_embedded_target_gets_the_held_release_back_and_it_verifies(tmp_path: Path):
    local_dir = tmp_path / "local"
    cfg = stage_config()
    release = make_release(tmp_path / "release")
    push_release(_seeded(local_dir), release, "Publish")

    server = start_server(local_dir)  # a fresh moto: nothing deployed
    try:
        fresh = Target("local", local_dir, server.endpoint_url)
        assert not verify_stage(release, "dev", fresh).ok  # the state is gone
        said: list[str] = []
        (restored,) = restore_from_env_repos(fresh, {"dev": cfg}, said.append)
        assert restored.release_id is not None and restored.release_id == verify_stage(release, "dev", fresh).release_id
        report = verify_stage(release, "dev", fresh)
        assert report.ok, report.problems
        assert any(line.startswith(f"dev: release {restored.release_id[:12]} deployed again") for line in said)
    finally:
        stop_server(local_dir)


def test_a_stage_holding_nothing_is_left_alone(tmp_path: Path):
    local_dir = tmp_path / "local"
    cfg = stage_config()
    _seeded(local_dir)
    said: list[str] = []
    (restored,) = restore_from_env_repos(Target("local", local_dir), {"dev": cfg}, said.append)
    assert restored.release_id is None and said == ["dev: holds no release; nothing to restore"]
