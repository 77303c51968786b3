"""Output for operators: timestamped, levelled lines in a build log; the terminal's output unchanged; -q and -v."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from release_builder import build_release

from gitops.config import load_stages
from gitops.release.manifest import StageSummary, stage_config_path
from gitops.release.pipelines import canonical_json

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (DEBUG|INFO |WARNING|ERROR) ")


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    cfg = load_stages(ROOT)["dev"]
    out = tmp_path_factory.mktemp("log") / "release"
    files = {stage_config_path("dev"): canonical_json(cfg.model_dump(mode="json"))}
    summary = StageSummary(account=cfg.account, region=cfg.region, promote_to=None, stacks={}, pipelines={})
    build_release(out, files, {"dev": summary}, scanned=False)
    return out


def _gitops(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("CODEBUILD_BUILD_ID", "GITOPS_LOG_LINES")}
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "gitops", *args], cwd=cwd, env=environ, capture_output=True, text=True, timeout=120
    )


def _report(release: Path, tmp_path: Path, *flags: str, **env: str) -> subprocess.CompletedProcess[str]:
    out = ["--output", str(tmp_path / "page.html")]
    # From an empty directory: no reports/scan.sarif of another release is picked up.
    return _gitops(*flags, "report", "--release", str(release), "--against", str(release), *out, cwd=tmp_path, **env)


def test_in_codebuild_every_stderr_line_has_a_timestamp_and_a_level(release, tmp_path):
    done = _report(release, tmp_path, CODEBUILD_BUILD_ID="gitops-verify:1")
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines and all(LINE.match(line) for line in lines), lines
    assert any(" INFO  report release " in line and line.endswith(f"against {release}") for line in lines), lines
    refused = _gitops("verify", "--stage", "qa", "--release", "nowhere", CODEBUILD_BUILD_ID="gitops-verify:1")
    first = refused.stderr.splitlines()[0]
    assert re.match(LINE.pattern + r"error: --stage qa: no such stage", first), first
    assert " ERROR " in first and "[bold" not in refused.stderr  # plain text, no markup


def test_on_a_terminal_or_a_pipe_outside_a_build_the_output_is_unchanged(release, tmp_path):
    done = _report(release, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[0].startswith("report release ")
    refused = _gitops("verify", "--stage", "qa", "--release", "nowhere")
    assert refused.stderr.startswith("error: --stage qa: no such stage")


def test_quiet_keeps_results_and_errors_and_drops_progress(release, tmp_path):
    done = _report(release, tmp_path, "--quiet")
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.startswith("release page: ")
    refused = _gitops("-q", "verify", "--stage", "qa", "--release", "nowhere")
    assert refused.stderr.startswith("error: --stage qa")


def test_verbose_adds_the_engines_debug_lines(release, tmp_path):
    quiet = _report(release, tmp_path, GITOPS_LOG_LINES="1")
    assert " DEBUG " not in quiet.stderr
    done = _report(release, tmp_path, "--verbose", GITOPS_LOG_LINES="1")
    assert done.returncode == 0, done.stderr
    debug = [line for line in done.stderr.splitlines() if " DEBUG " in line]
    assert debug and LINE.match(debug[0]) and "gitops.report.page: stage dev: comparing release" in debug[0]
    both = _gitops("--verbose", "--quiet", "status")
    assert both.returncode != 0 and "--verbose and --quiet contradict each other" in both.stderr
