"""The scan verdict lives outside the release, keyed to this machine: a forged one counts for nothing.

Issue 10: a release whose scan failed reached dev because `scan.passed: true` in its manifest was
enough. Now the gate (`require_gate`, called by publish, deploy and promote) accepts only this
machine's HMAC-signed attestation for exactly the release id and the policy it carries, or runs the
scan itself. The real scanners run over a one-bucket release in the tests that say so.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from release_attestation import attest_scanned

from gitops.config import load_stages
from gitops.local.embedded import seed_env_repo
from gitops.machine import KEY_FILE, STATE_DIR_ENV, MachineKeyError
from gitops.promotion import envrepo
from gitops.promotion.promote import publish_release
from gitops.release.assets import sha256_bytes
from gitops.release.manifest import (
    RELEASE_POLICY,
    StackSummary,
    StageSummary,
    load_release,
    seal_manifest,
    stage_config_path,
    write_release_dir,
)
from gitops.release.pipelines import canonical_json
from gitops.scan import attestation, checkov
from gitops.scan.attestation import (
    RECORDS_DIR,
    GateRefused,
    find_attestation,
    policy_sha256,
    require_gate,
    state_dir,
)
from gitops.target import Target

ROOT = Path(__file__).resolve().parents[2]
STAGES = load_stages(ROOT)
DEV = STAGES["dev"]
OPEN_BUCKET = {"Resources": {"OpenBucket": {"Type": "AWS::S3::Bucket", "Properties": {}}}}
EMPTY = {"Resources": {}}


def build_release(out: Path, template: dict, *, policy: bytes | None = None) -> Path:
    """A dev-only release the real scanners can read: one template, cdk-nag's (empty) report, checkov's lock."""
    lock = (ROOT / checkov.LOCK).read_bytes()
    lock_path = f"assets/{sha256_bytes(lock)}/checkov-requirements.txt"
    files = {
        stage_config_path("dev"): canonical_json(DEV.model_dump(mode="json")),
        "stages/dev/templates/Base.template.json": canonical_json(template),
        "stages/dev/cdk-nag.json": canonical_json({"pack": "AwsSolutions", "cdk_nag": "3.0.2", "stacks": {}}),
        lock_path: lock,
    }
    if policy is not None:
        files[RELEASE_POLICY] = policy
    summary = StageSummary(
        account=DEV.account,
        region=DEV.region,
        promote_to=None,
        pipelines={},
        stacks={
            "Base": StackSummary(stack_name="mlops-dev-base", resources=len(template["Resources"]), resource_types={})
        },
    )
    manifest = seal_manifest(
        files, engine_wheel="assets/none/engine.whl", requirements={"checkov": lock_path}, stages={"dev": summary}
    )
    write_release_dir(out, files, manifest)
    return out


@pytest.fixture
def state(tmp_path, monkeypatch) -> Path:
    """A fresh state directory (key and attestations) for this test: this machine, from scratch."""
    path = tmp_path / "state"
    monkeypatch.setenv(STATE_DIR_ENV, str(path))
    return path


@pytest.fixture
def scan_root(tmp_path, monkeypatch) -> Path:
    """Where the gate's own scan runs (reports land here), with the repository's checkov environment."""
    checkov.ensure_checkov(ROOT, install=True, progress=print)
    monkeypatch.setenv(checkov.ENV_OVERRIDE, str(checkov.env_dir(ROOT)))
    root = tmp_path / "work"
    root.mkdir()
    return root


def _record_file(release: Path) -> Path:
    manifest = load_release(release)
    return state_dir() / RECORDS_DIR / f"{manifest.release_id}.{policy_sha256(release)[:16]}.json"


# Without the scanners: the record, its key and what makes it count ------------------------------


def test_an_attestation_counts_for_exactly_its_release_and_policy(tmp_path, state):
    release = build_release(tmp_path / "r", EMPTY)
    manifest = load_release(release)
    attest_scanned(release)
    assert find_attestation(manifest.release_id, policy_sha256(release)) is not None
    assert require_gate(release).passed
    assert find_attestation(manifest.release_id, "0" * 64) is None  # another policy
    other = build_release(tmp_path / "other", EMPTY, policy=b"version: 1\n")
    assert find_attestation(load_release(other).release_id, policy_sha256(other)) is None
    key = state / KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_bytes()) == 32


def test_a_hand_edited_attestation_counts_for_nothing(tmp_path, state):
    release = build_release(tmp_path / "r", OPEN_BUCKET)
    attest_scanned(release, passed=False, rules=("CKV_AWS_18 (dev/Base/OpenBucket)",))
    record = _record_file(release)
    doc = json.loads(record.read_text())
    doc.update(passed=True, findings=0, rules=[])  # the forger keeps the MAC: no key to make a new one
    record.write_text(json.dumps(doc))
    assert find_attestation(load_release(release).release_id, policy_sha256(release)) is None


def test_an_attestation_brought_from_another_machine_counts_for_nothing(tmp_path, monkeypatch):
    release = build_release(tmp_path / "r", OPEN_BUCKET)
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "elsewhere"))
    attest_scanned(release)  # genuinely signed, by the other machine's key
    copied = _record_file(release).read_bytes()
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "here"))
    attest_scanned(build_release(tmp_path / "unrelated", EMPTY))  # this machine has a key of its own
    _record_file(release).write_bytes(copied)
    assert find_attestation(load_release(release).release_id, policy_sha256(release)) is None


def test_an_attestation_made_by_another_engine_is_not_reused(tmp_path, state, monkeypatch):
    release = build_release(tmp_path / "r", EMPTY)
    attest_scanned(release)
    monkeypatch.setattr(attestation, "engine_digest", lambda: "an-engine-with-other-rules")
    assert find_attestation(load_release(release).release_id, policy_sha256(release)) is None


def test_a_failed_verdict_is_refused_naming_the_rule(tmp_path, state):
    release = build_release(tmp_path / "r", OPEN_BUCKET)
    attest_scanned(release, passed=False, rules=("CKV_AWS_18 (dev/Base/OpenBucket)",))
    with pytest.raises(
        GateRefused, match=r"failed its policy scan: 1 finding\(s\): CKV_AWS_18 \(dev/Base/OpenBucket\)"
    ):
        require_gate(release)


def test_a_key_other_users_can_read_is_refused(tmp_path, state):
    release = build_release(tmp_path / "r", EMPTY)
    attest_scanned(release)
    os.chmod(state / KEY_FILE, 0o644)
    with pytest.raises(MachineKeyError, match=rf"{KEY_FILE}: the machine key is readable by other users"):
        require_gate(release)


# With the real scanners: the gate scans what it cannot trust ----------------------------------------


@pytest.fixture
def dev_repo(tmp_path) -> Target:
    seeds = tmp_path / "seeds"
    for seed in ("seed_repo", "prod_repo"):
        (seeds / seed).mkdir(parents=True)
        (seeds / seed / "README.md").write_text(f"{seed}\n")
    seed_env_repo(seeds, tmp_path / "local", DEV)
    return Target("local", tmp_path / "local", "http://127.0.0.1:1")


@pytest.mark.integration  # the gate runs a real scan of the failing release
def test_a_forged_scan_record_cannot_publish_a_failing_release(tmp_path, state, scan_root, dev_repo, monkeypatch):
    release = build_release(tmp_path / "r", OPEN_BUCKET)
    attest_scanned(release, passed=False, rules=("CKV_AWS_18 (dev/Base/OpenBucket)",))
    record = _record_file(release)
    doc = json.loads(record.read_text())
    record.write_text(json.dumps({**doc, "passed": True, "findings": 0, "rules": []}))
    monkeypatch.chdir(scan_root)
    with pytest.raises(GateRefused, match=r"release [0-9a-f]{12} failed its policy scan: \d+ finding\(s\): CKV"):
        publish_release(release, "dev", dev_repo)
    _, held = envrepo.current_release(dev_repo.env_repo_url(DEV))
    assert held is None  # dev never saw it
    assert (scan_root / "reports" / "scan.sarif").is_file()  # the gate's own scan, with its reports
    assert find_attestation(load_release(release).release_id, policy_sha256(release)).passed is False


@pytest.mark.slow  # a second real scan (~30 s); the forged-record test above runs in the fast tier
def test_a_copied_record_and_a_local_policy_edit_cannot_pass_the_gate(tmp_path, scan_root, monkeypatch):
    release = build_release(tmp_path / "r", OPEN_BUCKET)  # carries no policy: nothing may be suppressed
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "elsewhere"))
    attest_scanned(release)
    copied = _record_file(release).read_bytes()
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "here"))
    _record_file(release).parent.mkdir(parents=True)
    _record_file(release).write_bytes(copied)
    # A policy file where the stage runs suppresses the finding; the release-only scan never reads it.
    (scan_root / "policy.yaml").write_text(
        "version: 1\nsuppressions:\n  - rule: CKV_AWS_18\n    resources: [Base/OpenBucket]\n"
        "    reason: a local edit that nobody reviewed and that must not count\n"
    )
    with pytest.raises(GateRefused, match=r"failed its policy scan: \d+ finding\(s\): CKV"):
        require_gate(release, root=scan_root)
    verdict = find_attestation(load_release(release).release_id, policy_sha256(release))
    assert "CKV_AWS_18 (dev/Base/OpenBucket)" in verdict.rules
    # The gate's verdict is now this machine's own: a second call refuses without scanning again.
    monkeypatch.setattr("gitops.scan.gate.scan_release", lambda *a, **k: pytest.fail("scanned twice"))
    with pytest.raises(GateRefused, match="failed its policy scan"):
        require_gate(release, root=scan_root)


@pytest.mark.slow
def test_a_clean_release_never_scanned_here_is_scanned_by_the_gate_and_passes(tmp_path, state, scan_root):
    release = build_release(tmp_path / "r", EMPTY)
    found = require_gate(release, root=scan_root)
    assert found.passed and found.scope == "release" and found.release_id == load_release(release).release_id
    assert found.scanners["cfn-lint"] and found.scanners["checkov"] == checkov.CHECKOV_VERSION
