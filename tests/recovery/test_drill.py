"""`gitops drill` end to end on the embedded target: deploy dev and prod, data, backup, WIPE, restore, verify."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from recovery_release import ROOT, make_release

from gitops.cli import main

pytestmark = pytest.mark.slow


def test_the_drill_brings_back_everything_it_wrote(tmp_path: Path, capsys):
    release = make_release(tmp_path / "release")
    with pytest.raises(SystemExit) as exited:
        main(["drill", "--release", str(release), "--work", str(tmp_path / "drill"), "--root", str(ROOT), "--json"])
    assert exited.value.code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True, report["lost"]
    assert report["lost"] == [] and report["rpo_items"] == 0
    assert 0 < report["rto_seconds"] < report["seconds"]
    assert [s["stage"] for s in report["stages"]] == ["dev", "prod"]
    for stage in report["stages"]:
        assert stage["written"] == {"feature-offline objects": 3, "model packages": 2, "app rows": 35}
        # 1 bundle, 1 secret, 1 dump, 2 packages + 4 artifacts/reports, 3 offline objects
        assert stage["backed_up"] == {
            "env-repo": 1,
            "secrets": 1,
            "app-database": 1,
            "model-registry": 6,
            "feature-offline": 3,
        }
        assert "Feature Store runtime" in stage["skipped"]["feature-online"]
        assert stage["wiped"] >= 10  # the wipe really took the data away before the restore
        restore = stage["restore"]
        assert restore["ok"] and restore["differences"] == [] and restore["verify_problems"] == []
        assert restore["env_head_release_id"] == report["release_id"]
        restored = {k["kind"]: len(k["changed"]) for k in restore["kinds"]}
        assert restored["model-registry"] == 6 and restored["feature-offline"] == 3
        assert restored["app-database"] == 1 and restored["secrets"] == 1
    assert any("CloudWatch logs" in line for line in report["lost_by_design"])
