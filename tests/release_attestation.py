"""Test releases' scan verdicts, recorded the way `gitops scan` records them on this machine.

Tests that publish, deploy or promote a hand-built release attest its scan here instead of running
the scanners over it (tests/scan/test_attestation.py runs the real gate).
"""

from __future__ import annotations

from pathlib import Path

from gitops.release.manifest import load_release
from gitops.scan.attestation import Attestation, current_scanners, policy_sha256, record_attestation


def attest_scanned(release_dir: Path, *, passed: bool = True, rules: tuple[str, ...] = ()) -> Attestation:
    """This machine's attestation that the release passed (or failed, naming rules) under its own policy."""
    manifest = load_release(release_dir)
    scanners = {name: str(version) for name, version in current_scanners().items()}
    return record_attestation(
        release_id=manifest.release_id,
        policy_sha256=policy_sha256(release_dir),
        scanners=scanners,
        scope="release",
        passed=passed,
        findings=0 if passed else max(len(rules), 1),
        rules=list(rules) if rules or passed else ["CKV_AWS_53 (dev/Base/PublicBucket)"],
    )
