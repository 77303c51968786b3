"""Bad input to the recovery verbs: one line, non-zero exit, nothing asked of AWS."""

from __future__ import annotations

from pathlib import Path

import pytest
from recovery_release import ROOT

from gitops.cli import main
from gitops.recovery.destination import parse_s3_url
from gitops.recovery.manifest import BackupError


def _error_line(capsys, args: list[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 1
    (line,) = [text for text in capsys.readouterr().err.splitlines() if text.startswith("error: ")]
    assert len(line) < 260
    return line


def test_restore_from_nothing_or_an_unknown_stage_is_one_line(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.setenv("GITOPS_TARGET", "aws")  # resolving it makes no call; a refusal must come first
    line = _error_line(capsys, ["restore", "--stage", "dev", "--from", str(tmp_path / "none"), "--root", str(ROOT)])
    assert "no such backup set" in line
    (tmp_path / "half").mkdir()
    line = _error_line(capsys, ["restore", "--stage", "dev", "--from", str(tmp_path / "half"), "--root", str(ROOT)])
    assert "interrupted" in line
    line = _error_line(capsys, ["backup", "--stage", "qa", "--root", str(ROOT)])
    assert "--stage qa: no such stage" in line


def test_a_destination_must_be_an_s3_url():
    assert parse_s3_url("s3://mlops-backups/dev") == ("mlops-backups", "dev")
    with pytest.raises(BackupError, match="not an s3://bucket/prefix URL"):
        parse_s3_url("s3:///dev")
