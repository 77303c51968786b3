"""`gitops rehearse` end to end on the embedded target: the loop, a rejection, a second terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def gitops(root: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "GITOPS_APPROVER": "test-approver"}
    env.pop("GITOPS_TARGET", None)
    return subprocess.run(
        [sys.executable, "-m", "gitops", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def start_rehearsal(root: Path) -> subprocess.Popen[str]:
    """A rehearsal without --approve and without a terminal: it waits at the gate for another process."""
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("GITOPS_TARGET", None)
    return subprocess.Popen(
        [sys.executable, "-m", "gitops", "rehearse", "--keep-running", "--json"],
        cwd=root,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def status(root: Path) -> dict:
    done = gitops(root, "status", "--json", "--target", "local")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def held(root: Path) -> dict[str, str | None]:
    return {s["stage"]: s["release_id"] for s in status(root)["stages"]}


def wait_for_gate(root: Path, proc: subprocess.Popen[str], timeout: float = 400) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        if (root / ".gitops/local/moto.json").exists():
            try:
                waiting = [w for s in status(root)["stages"] for w in s["waiting_approvals"]]
            except AssertionError:
                waiting = []
            if waiting:
                return waiting[0]["release_id"]
        time.sleep(1)
    proc.kill()
    raise AssertionError("the rehearsal never reached the approval gate")


def new_release(root: Path, note: str) -> None:
    """A source change that yields a new release id (the README travels in the engine wheel)."""
    with open(root / "README.md", "a") as handle:
        handle.write(f"\n{note}\n")


def tree(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def repo(tmp_path_factory, checkout_copy):
    root = checkout_copy(tmp_path_factory.mktemp("rehearsal"))
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    identity = ["-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", *identity, "commit", "-qm", "source"], cwd=root, check=True)
    yield root
    gitops(root, "local", "down")


def test_full_loop_reaches_prod_with_the_same_bytes(repo: Path, tmp_path: Path):
    done = gitops(repo, "rehearse", "--approve", "--json", "--keep-running")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    release_id = result["release_id"]
    assert result["final_releases"] == {"dev": release_id, "prod": release_id}
    ran = {(s["stage"], s["step"]): s["status"] for s in result["steps"]}
    for stage, step in [
        ("dev", "Deploy/Deploy"),
        ("dev", "Verify/Verify"),
        ("dev", "Approve/ApproveRelease"),
        ("dev", "Promote/Promote"),
        ("prod", "Deploy/Deploy"),
        ("prod", "Verify/Verify"),
        # After dev's Deploy, its SageMaker pipelines really ran on the local executor.
        ("dev", "feature-ingestion/IngestFeatures"),
        ("dev", "training/Train"),
        ("dev", "training/RegisterModel"),
    ]:
        assert ran[(stage, step)] == "Succeeded"
    assert held(repo) == {"dev": release_id, "prod": release_id}
    dev = next(row for row in status(repo)["stages"] if row["stage"] == "dev")
    executions = {e["pipeline_name"]: e for e in dev["pipeline_executions"]}
    assert executions["mlops-dev-training"]["status"] == "Succeeded"
    assert [s["name"] for s in executions["mlops-dev-training"]["steps"] if s["status"] == "Succeeded"] == [
        "Preprocess",
        "Train",
        "Evaluate",
        "CheckAuc",
        "RegisterModel",
    ]
    # status says, per stage and stack, what the embedded target could not deploy and so not verify.
    for row in status(repo)["stages"]:
        not_checked = row["verified"]["not_checked"]
        assert any("(AWS::CodePipeline::Pipeline)" in item for item in not_checked[f"mlops-{row['stage']}-mlops"])

    # The prod repository's last commit holds exactly the dev release's bytes.
    repos = repo / ".gitops/local/repos"
    for stage in ("dev", "prod"):
        subprocess.run(["git", "clone", "-q", str(repos / f"{stage}.git"), str(tmp_path / stage)], check=True)
    assert tree(tmp_path / "prod" / "release") == tree(tmp_path / "dev" / "release")
    assert tree(tmp_path / "prod" / "release") == tree(repo / "release")

    again = gitops(repo, "rehearse", "--approve", "--json", "--keep-running")
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout)["already_promoted"] is True


def test_rejection_from_a_second_terminal_stops_before_prod(repo: Path):
    before = held(repo)["prod"]
    new_release(repo, "a change to reject")
    proc = start_rehearsal(repo)
    release_id = wait_for_gate(repo, proc)
    rejected = gitops(
        repo, "reject", "--release", release_id[:12], "--summary", "latency regression", "--target", "local"
    )
    assert rejected.returncode == 0, rejected.stderr
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert "rejected" in stderr and "latency regression" in stderr
    assert held(repo) == {"dev": release_id, "prod": before}


def test_approval_from_a_second_terminal_promotes(repo: Path):
    new_release(repo, "a change to approve")
    proc = start_rehearsal(repo)
    release_id = wait_for_gate(repo, proc)
    wrong = gitops(repo, "approve", "--release", "0" * 12, "--target", "local")
    assert wrong.returncode == 1 and "is not waiting for approval in stage dev; waiting: " in wrong.stderr
    approved = gitops(repo, "approve", "--release", release_id[:12], "--summary", "ok", "--target", "local")
    assert approved.returncode == 0, approved.stderr
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    assert json.loads(stdout)["final_releases"] == {"dev": release_id, "prod": release_id}
    assert held(repo) == {"dev": release_id, "prod": release_id}
