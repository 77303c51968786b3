"""What a user runs by hand or reads in the output: checkov's console scripts run, cfn-lint's INFO stays quiet."""

from __future__ import annotations

import io
import json
import logging
import subprocess
from pathlib import Path

from gitops.scan import checkov
from gitops.scan.cfn_lint import run_cfn_lint
from gitops.scan.templates import TemplateRef

ROOT = Path(__file__).resolve().parents[2]


def _one_package_lock(path: Path, package: str) -> Path:
    """A hash-locked requirements file of one package copied from checkov's lock (no dependencies, has a script)."""
    lines = (ROOT / checkov.LOCK).read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{package}=="))
    block = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith("    --hash="):
            break
        block.append(line)
    path.write_text("\n".join(block).rstrip(" \\") + "\n")
    return path


def test_console_scripts_of_the_checkov_environment_run_after_it_is_moved_into_place(tmp_path, monkeypatch):
    # The environment is built in a temporary directory and renamed: its scripts must not name that directory.
    monkeypatch.setenv(checkov.ENV_OVERRIDE, str(tmp_path / "tools" / "checkov"))
    lock = _one_package_lock(tmp_path / "lock.txt", "charset-normalizer")
    checkov.install_checkov(tmp_path, lock=lock)
    env = checkov.env_dir(tmp_path)
    script = env / "bin" / "normalizer"
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "3.5.2" in done.stdout + done.stderr
    assert not list(env.parent.glob(".checkov.tmp-*"))
    assert checkov.env_state(tmp_path, lock) == "ready"


def test_an_environment_whose_scripts_name_a_gone_interpreter_is_stale_and_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv(checkov.ENV_OVERRIDE, str(tmp_path / "tools" / "checkov"))
    lock = _one_package_lock(tmp_path / "lock.txt", "charset-normalizer")
    checkov.install_checkov(tmp_path, lock=lock)
    env = checkov.env_dir(tmp_path)
    # What environments built before the fix look like: the #! of the temporary build directory.
    (env / "bin" / "checkov").write_text(f"#!{tmp_path}/tools/.checkov.tmp-gone/bin/python\nprint('x')\n")
    assert checkov.env_state(tmp_path, lock) == "stale"
    checkov.install_checkov(tmp_path, lock=lock)
    assert checkov.env_state(tmp_path, lock) == "ready"
    assert not (env / "bin" / "checkov").exists()


def test_cfn_lint_says_nothing_at_info_even_when_the_root_logger_listens(tmp_path):
    # The SageMaker SDK (imported by render in the same process as scan, e.g. in `rehearse`)
    # can put the root logger at INFO; cfn-lint's "Run scan of template ..." must not reach the terminal.
    body = {"Resources": {"Bucket": {"Type": "AWS::S3::Bucket"}}}
    text = json.dumps(body, indent=2).encode()
    path = tmp_path / "Base.template.json"
    path.write_bytes(text)
    ref = TemplateRef("dev", "Base", "stages/dev/templates/Base.template.json", path, "eu-west-1", body)
    root = logging.getLogger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        run = run_cfn_lint([ref])
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    assert run.tool == "cfn-lint" and run.passed > 0
    assert "Run scan of template" not in stream.getvalue()
    assert stream.getvalue() == ""
