"""The shipped infrastructure passes the policy gate: the release from `render`, scanned, has no finding.

Renders the whole release once (slow), scans it with the real policy.yaml, and proves the cdk-nag
acknowledgments generated from policy.yaml leave cdk-nag itself with nothing to report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gitops.release.manifest import load_release
from gitops.release.render import render_release
from gitops.scan import load_policy, scan_release
from gitops.scan.policy import MIN_REASON

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_scan import validate_sarif  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scanned(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("shipped")
    release = render_release(ROOT, base / "release").out
    before = load_release(release)
    report = scan_release(ROOT, release, out_dir=base / "reports", progress=print)
    return {"release": release, "before": before, "report": report, "base": base}


def test_the_rendered_release_passes_with_zero_unsuppressed_findings(scanned):
    report = scanned["report"]
    assert [(f.target, f.rule_ids, f.message) for f in report.findings] == []
    assert report.passed
    assert set(report.tools) == {"cfn-lint", "checkov", "cdk-nag", "detect-secrets", "pipelines", "policy"}
    for name in ("cfn-lint", "checkov", "cdk-nag", "detect-secrets", "pipelines"):
        assert report.tools[name].passed > 0, name
        assert report.tools[name].failed == 0, name
    assert all(len(s.reason) >= MIN_REASON for _, s in report.suppressed)


def test_every_suppression_left_is_explained_and_in_use(scanned):
    policy = load_policy(ROOT / "policy.yaml")
    assert policy.suppressions
    for suppression in policy.suppressions:
        assert len(suppression.reason) >= MIN_REASON
        assert not any(c in "".join(suppression.resources) for c in "*?[]")
    # A template finding may be suppressed as <Stack>/<LogicalId> or, for one stage only, <stage>/<Stack>/<LogicalId>.
    used = {(s.rule, f.target.split("/", 1)[1] if f.in_template else f.target) for f, s in scanned["report"].suppressed}
    used |= {(s.rule, f.target) for f, s in scanned["report"].suppressed if f.in_template}
    for suppression in policy.suppressions:
        for resource in suppression.resources:
            assert (suppression.rule, resource) in used, f"unused: {suppression.rule} on {resource}"


def test_the_scan_is_attested_for_the_release_and_its_policy_and_the_reports_are_valid(scanned):
    from gitops.scan.attestation import find_attestation, policy_sha256, require_gate

    manifest = load_release(scanned["release"])
    assert manifest.release_id == scanned["before"].release_id
    assert (scanned["release"] / "policy.yaml").read_bytes() == (ROOT / "policy.yaml").read_bytes()
    record = find_attestation(manifest.release_id, policy_sha256(scanned["release"]))
    assert record is not None and record.passed and record.scope == "release+source"
    assert require_gate(scanned["release"]) == record  # publish, deploy and promote accept it as it is
    assert scanned["report"].tools["checkov"].suppressed > 0 and scanned["report"].tools["cdk-nag"].suppressed > 0
    validate_sarif(json.loads(scanned["report"].sarif.read_text()))
    assert scanned["report"].junit.read_text().count("<failure") == 0


def test_a_release_only_scan_with_the_policy_it_carries_passes_too(scanned, tmp_path):
    """What every stage's deploy build runs: no source tree, only the release's own policy."""
    report = scan_release(tmp_path, scanned["release"], out_dir=tmp_path / "reports", source=False)
    assert [(f.target, f.rule_ids, f.message) for f in report.findings] == []
    assert report.policy_path.endswith("policy.yaml") and report.tools["detect-secrets"].version == "not run"


def test_the_cli_prints_a_passing_table(scanned):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gitops",
            "scan",
            "--release",
            str(scanned["release"]),
            "--no-install",
            "--sarif",
            str(scanned["base"] / "cli.sarif"),
            "--junit",
            str(scanned["base"] / "cli.xml"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "160"},
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "scan passed" in done.stdout and "checkov" in done.stdout


def test_cdk_synth_with_acknowledgments_generated_from_the_policy_has_no_cdk_nag_violation(tmp_path):
    from cdk_nag import AwsSolutionsChecks

    from gitops.config import load_stages
    from gitops.scan.cdk_nag import enforce_in_cdk_cli

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from infra.app import build_app

    stages = load_stages(ROOT)
    app = build_app(ROOT, stages, outdir=str(tmp_path / "cdk.out"))
    enforce_in_cdk_cli(app, ROOT, lambda: stages)  # what `cdk synth` runs: the plugin + generated acks
    app.synth()  # raises on any violation the policy does not acknowledge
    report = json.loads((tmp_path / "cdk.out" / "validation-report.json").read_text())
    assert all(not plugin.get("violations") for plugin in report.get("pluginReports", []))
    for stage in stages:
        assert AwsSolutionsChecks().validate_scope(app.node.find_child(stage)).violations == []
