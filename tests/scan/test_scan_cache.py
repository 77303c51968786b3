"""The scan cache: an unchanged release re-scans from it, a changed template alone is scanned again, and
an entry edited by hand counts for nothing (its MAC, under this machine's key, no longer holds)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from gitops.release.pipelines import canonical_json
from gitops.scan import checkov
from gitops.scan.gate import scan_release
from gitops.scan.result_cache import CACHE_DIR

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scan_builders import source_tree, write_release  # noqa: E402

PLAIN_BUCKET = {"Resources": {"Logs": {"Type": "AWS::S3::Bucket", "Properties": {}}}}
TOPIC = {"Resources": {"Alerts": {"Type": "AWS::SNS::Topic", "Properties": {}}}}


def notes(report, tool: str) -> list[str]:
    return report.tools[tool].notes


def rules_on(report, stack: str) -> set[tuple[str, str]]:
    return {(f.tool, f.rule_id) for f in report.findings if f.stack == stack for f in [f, *f.also]}


@pytest.fixture
def state(tmp_path, monkeypatch, checkov_env) -> Path:
    monkeypatch.setenv("GITOPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv(checkov.ENV_OVERRIDE, str(checkov_env))
    monkeypatch.delenv("GITOPS_SCAN_NO_CACHE", raising=False)
    return tmp_path / "state"


def scan(tmp_path: Path, release: Path):
    root = tmp_path / "source"
    if not root.exists():
        source_tree(root, secret=False)  # carries checkov's lock
    return scan_release(root, release, out_dir=tmp_path / "reports", source=False)


def test_unchanged_templates_come_from_the_cache_and_an_edited_entry_is_not_trusted(tmp_path, state):
    templates = {"Data": canonical_json(PLAIN_BUCKET), "Alerts": canonical_json(TOPIC)}
    release = write_release(tmp_path / "release", templates)
    cold = scan(tmp_path, release)
    assert notes(cold, "checkov")[-1] == "cache: 0 unchanged, 2 scanned"
    assert notes(cold, "cfn-lint")[-1] == "cache: 0 unchanged, 2 scanned"
    on_bucket = rules_on(cold, "Data")
    assert ("checkov", "CKV_AWS_18") in on_bucket  # a bucket without access logs: a real finding to keep

    warm = scan(tmp_path, release)
    assert notes(warm, "checkov")[-1] == "cache: 2 unchanged, 0 scanned"
    assert notes(warm, "cfn-lint")[-1] == "cache: 2 unchanged, 0 scanned"
    assert rules_on(warm, "Data") == on_bucket
    assert warm.tools["checkov"].passed == cold.tools["checkov"].passed

    # Hand-edit every checkov entry to hold no findings: the MAC no longer holds, so the entries are
    # re-scanned (the finding is back) and rewritten.
    entries = sorted((state / CACHE_DIR / "checkov").glob("*.json"))
    assert len(entries) == 2
    for entry in entries:
        data = json.loads(entry.read_text())
        data["run"]["findings"] = []
        entry.write_text(json.dumps(data))
    edited = scan(tmp_path, release)
    assert notes(edited, "checkov")[-1] == "cache: 0 unchanged, 2 scanned"
    assert ("checkov", "CKV_AWS_18") in rules_on(edited, "Data")
    assert not edited.passed

    # An entry signed with another machine's key (the key replaced) counts for nothing either.
    key = state / "attestation.key"
    key.unlink()
    fresh_key = scan(tmp_path, release)
    assert notes(fresh_key, "cfn-lint")[-1] == "cache: 0 unchanged, 2 scanned"
    assert os.stat(key).st_mode & 0o077 == 0


def test_only_the_changed_template_is_scanned_again(tmp_path, state):
    release = write_release(
        tmp_path / "release", {"Data": canonical_json(PLAIN_BUCKET), "Alerts": canonical_json(TOPIC)}
    )
    scan(tmp_path, release)
    changed = {"Resources": {"Alerts": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "alerts"}}}}
    release = write_release(
        tmp_path / "release2", {"Data": canonical_json(PLAIN_BUCKET), "Alerts": canonical_json(changed)}
    )
    again = scan(tmp_path, release)
    assert notes(again, "checkov")[-1] == "cache: 1 unchanged, 1 scanned"
    assert notes(again, "cfn-lint")[-1] == "cache: 1 unchanged, 1 scanned"
    assert ("checkov", "CKV_AWS_18") in rules_on(again, "Data")  # the cached finding is still reported


def test_with_the_cache_off_every_template_is_scanned(tmp_path, state, monkeypatch):
    release = write_release(tmp_path / "release", {"Data": canonical_json(PLAIN_BUCKET)})
    scan(tmp_path, release)
    monkeypatch.setenv("GITOPS_SCAN_NO_CACHE", "1")
    again = scan(tmp_path, release)
    assert notes(again, "checkov")[-1] == "cache: off, 1 scanned"
    assert ("checkov", "CKV_AWS_18") in rules_on(again, "Data")
