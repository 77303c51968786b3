"""`gitops status` on the embedded target after it stopped (as `rehearse` leaves it): read from disk, said plainly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from gitops.config import load_stages
from gitops.local.embedded import read_server, seed_env_repo
from gitops.target import LOCAL_DIR_ENV, TARGET_ENV

ROOT = Path(__file__).resolve().parents[2]


def _stopped_target(tmp_path: Path) -> Path:
    local_dir = tmp_path / "local"
    for cfg in load_stages(ROOT).values():
        seed_env_repo(ROOT, local_dir, cfg)
    assert read_server(local_dir) is None  # no server: what rehearse leaves when it ends
    return local_dir


def _gitops(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in (TARGET_ENV, LOCAL_DIR_ENV)}
    environ.update(env, COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "gitops", *args], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120
    )


def test_status_after_the_embedded_target_stopped_reads_the_env_repos_and_says_what_is_gone(tmp_path):
    local_dir = _stopped_target(tmp_path)
    done = _gitops("status", "--target", "local", **{LOCAL_DIR_ENV: str(local_dir)})
    assert done.returncode == 0, done.stderr
    assert "dev" in done.stdout and "prod" in done.stdout
    assert "the embedded target is stopped" in done.stdout
    assert "`gitops local up` deploys them again from the env repos" in done.stdout

    as_json = _gitops("status", "--json", **{LOCAL_DIR_ENV: str(local_dir), TARGET_ENV: "local"})
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert [row["stage"] for row in data["stages"]] == ["dev", "prod"]
    assert all(row["release_id"] is None for row in data["stages"])
    assert data["note"].startswith("the embedded target is stopped")


def test_status_says_where_the_release_page_of_each_stage_is(tmp_path):
    from env_repo_releases import published_release

    local_dir = _stopped_target(tmp_path)
    release_id = published_release(tmp_path / "release", local_dir / "repos" / "dev.git")
    done = _gitops("status", "--target", "local", **{LOCAL_DIR_ENV: str(local_dir)})
    assert done.returncode == 0, done.stderr
    bucket = load_stages(ROOT)["dev"].artifact_bucket_name
    expected = f"dev: release page s3://{bucket}/reports/{release_id}/release.html (or: gitops report --stage dev)"
    assert expected in done.stdout
    assert "prod: release page" not in done.stdout  # prod holds nothing yet


def test_status_without_any_embedded_state_still_refuses(tmp_path):
    done = _gitops("status", "--target", "local", **{LOCAL_DIR_ENV: str(tmp_path / "never-started")})
    assert done.returncode != 0
    assert "the embedded target is not running" in done.stderr
