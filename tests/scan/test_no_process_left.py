"""No process outlives a verb, zombies included: `gitops scan` runs under a child subreaper that sees every orphan.

The verb runs in a small supervisor process that marks itself a child subreaper (prctl
PR_SET_CHILD_SUBREAPER): any process the verb started and did not reap is re-parented to the
supervisor instead of init, so it is seen whether still running or already defunct.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gitops.release.pipelines import canonical_json
from gitops.scan import checkov

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scan_builders import source_tree, write_release  # noqa: E402

SUPERVISOR = r"""
import ctypes, json, os, subprocess, sys, time
import psutil
PR_SET_CHILD_SUBREAPER = 36
if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
    sys.exit("prctl(PR_SET_CHILD_SUBREAPER) failed")
done = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=600)
time.sleep(1.0)  # an orphan still shutting down gets its chance to go
def described(p):
    try:
        return {"pid": p.pid, "status": p.status(), "cmdline": " ".join(p.cmdline())[:200]}
    except psutil.Error as exc:  # a zombie has no command line left
        return {"pid": p.pid, "status": "zombie" if isinstance(exc, psutil.ZombieProcess) else "gone"}
left = [described(p) for p in psutil.Process().children(recursive=True)]
reaped = []
while True:
    try:
        pid, _ = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        break
    if pid == 0:
        break
    reaped.append(pid)
print(json.dumps({"exit": done.returncode, "stderr": done.stderr[-2000:], "left": left, "reaped": reaped}))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="child subreapers are a Linux feature")
def test_gitops_scan_leaves_no_process_behind(tmp_path, checkov_env):
    release = write_release(tmp_path / "release", {"Base": canonical_json({"Resources": {}})})
    source = source_tree(tmp_path / "source", secret=False)
    subprocess.run(["git", "init", "-q", str(source)], check=True)  # the secrets scan lists files with git
    verb = [sys.executable, "-m", "gitops", "scan", "--release", str(release), "--root", str(source), "--json"]
    env = {**os.environ, checkov.ENV_OVERRIDE: str(checkov_env), "GITOPS_STATE_DIR": str(tmp_path / "state")}
    done = subprocess.run(
        [sys.executable, "-c", SUPERVISOR, *verb], capture_output=True, text=True, env=env, timeout=700
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["exit"] == 0, seen["stderr"]  # the scan ran, every scanner included (the secrets child too)
    assert seen["left"] == [], f"processes outlived `gitops scan`: {seen['left']}"
    assert seen["reaped"] == [], f"orphans of `gitops scan` exited after it (zombies until reaped): {seen['reaped']}"
