"""The gate's own rules, whatever its tools are: only the policy suppresses, inline skips are refused,
the policy a stage scans with is the release's, and the verdict is what gets attested.

The registered scanners are swapped for one that reports fixed findings (each real scanner has its
own tests; the slow end-to-end scans are test_scan.py and test_gate_bypasses.py), so each test
here runs scan_release itself in well under a second and checks what it decides.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gitops.machine import STATE_DIR_ENV
from gitops.release.manifest import RELEASE_POLICY, load_release
from gitops.release.pipelines import canonical_json
from gitops.scan import gate
from gitops.scan.attestation import find_attestation, policy_sha256
from gitops.scan.checkov import CHECKOV_VERSION
from gitops.scan.errors import ScanError
from gitops.scan.findings import Finding, ToolRun
from gitops.scan.scanner import ScanInput, installed_version

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scan_builders import write_release  # noqa: E402

BUCKET = {"Type": "AWS::S3::Bucket", "Properties": {}}
POLICY = """version: 1
suppressions:
  - rule: FAKE1
    resources: [Base/Bucket]
    reason: the bucket holds public open data by design, reviewed by security
"""


@dataclass
class FixedScanner:
    """A scanner that reports the same finding on every template's Bucket, and records what it read.

    It stands in for checkov, under checkov's name and pinned version, and a silent one for cfn-lint:
    an attestation counts only for the scanner versions this machine would run (CHECKED_SCANNERS).
    """

    rule: str = "FAKE1"
    name: str = "checkov"
    release_version: str = CHECKOV_VERSION
    information_uri: str = "https://example.invalid/rules"
    passed_unit: str = "checks"
    read: list[dict] = field(default_factory=list)

    def version(self) -> str:
        return self.release_version

    def check_ready(self, job: ScanInput) -> None:
        pass

    def run(self, job: ScanInput) -> ToolRun:
        findings = []
        for template in job.templates:
            self.read.append(json.loads(template.tool_path.read_text()))
            if self.rule and "Bucket" in template.body["Resources"]:
                findings.append(
                    Finding(
                        tool=self.name,
                        rule_id=self.rule,
                        severity="error",
                        message="the bucket is open",
                        file=template.rel,
                        stage=template.stage,
                        stack=template.stack,
                        resource="Bucket",
                    )
                )
        return ToolRun(
            self.name,
            self.release_version,
            findings,
            passed=2,
            rules=[self.rule],
            coverage={"AWS::S3::Bucket": ["FAKE1"]},
        )


@pytest.fixture
def scanner(tmp_path, monkeypatch) -> FixedScanner:
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "state"))  # this test's attestations only
    fixed = FixedScanner()
    silent = FixedScanner(rule="", name="cfn-lint", release_version=installed_version("cfn-lint") or "")
    monkeypatch.setattr(gate, "SCANNERS", (fixed, silent))
    return fixed


def _release(tmp_path: Path, resources: dict, *, policy: str | None = None) -> Path:
    out = write_release(tmp_path / "release", {"Base": canonical_json({"Resources": resources})})
    if policy is not None:  # rebuilt with the policy among its files, as render puts it there
        from release_builder import build_release

        manifest = load_release(out)
        files = {rel: (out / rel).read_bytes() for rel in manifest.files}
        files[RELEASE_POLICY] = policy.encode()
        out = tmp_path / "release-with-policy"
        build_release(out, files, manifest.stages, scanned=False)
    return out


def _scan(tmp_path: Path, release: Path, **kwargs):
    (tmp_path / "src").mkdir(exist_ok=True)
    kwargs.setdefault("source", False)  # a stage's scan, unless the test says otherwise
    return gate.scan_release(tmp_path / "src", release, out_dir=tmp_path / "reports", **kwargs)


def test_a_finding_fails_the_scan_and_the_failure_is_what_is_attested(tmp_path, scanner):
    release = _release(tmp_path, {"Bucket": BUCKET})
    report = _scan(tmp_path, release)
    assert report.passed is False
    assert [(f.rule_id, f.stack, f.resource) for f in report.findings] == [("FAKE1", "Base", "Bucket")]
    attested = find_attestation(report.release_id, policy_sha256(release))
    assert attested is not None and attested.passed is False
    assert (attested.findings, attested.rules, attested.scope) == (1, ["FAKE1 (dev/Base/Bucket)"], "release")


def test_a_clean_release_passes_and_is_attested_as_passed(tmp_path, scanner):
    release = _release(tmp_path, {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}})
    report = _scan(tmp_path, release)
    assert report.passed is True and report.findings == []
    attested = find_attestation(report.release_id, policy_sha256(release))
    assert attested is not None and attested.passed is True


def test_without_record_nothing_is_attested(tmp_path, scanner):
    release = _release(tmp_path, {"Bucket": BUCKET})
    _scan(tmp_path, release, record=False)
    assert find_attestation(load_release(release).release_id, policy_sha256(release)) is None


def test_the_policy_the_release_carries_suppresses_the_finding(tmp_path, scanner):
    release = _release(tmp_path, {"Bucket": BUCKET}, policy=POLICY)
    report = _scan(tmp_path, release)
    assert report.passed is True and report.findings == []
    assert [(f.rule_id, s.rule) for f, s in report.suppressed] == [("FAKE1", "FAKE1")]
    assert find_attestation(report.release_id, policy_sha256(release)).passed is True  # type: ignore[union-attr]


def test_a_stage_never_scans_with_a_policy_file_beside_the_release(tmp_path, scanner):
    """A release-only scan (a stage's) takes the release's policy or none, never <root>/policy.yaml."""
    release = _release(tmp_path, {"Bucket": BUCKET})
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "policy.yaml").write_text(POLICY)
    report = _scan(tmp_path, release)
    assert report.passed is False and [f.rule_id for f in report.findings] == ["FAKE1"]


def test_a_suppression_that_matches_nothing_fails_the_scan(tmp_path, scanner):
    release = _release(tmp_path, {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}}, policy=POLICY)
    report = _scan(tmp_path, release)
    assert report.passed is False
    assert [(f.rule_id, f.message) for f in report.findings] == [
        ("unused-suppression", "suppression of FAKE1 on Base/Bucket matched no finding: remove it")
    ]


def test_an_inline_skip_fails_the_scan_and_the_tools_read_the_template_without_it(tmp_path, scanner):
    skipped = {**BUCKET, "Metadata": {"checkov": {"skip": [{"id": "FAKE1", "comment": "trust me"}]}}}
    release = _release(tmp_path, {"Bucket": skipped})
    report = _scan(tmp_path, release)
    assert report.passed is False
    assert sorted(f.rule_id for f in report.findings) == ["FAKE1", "inline-suppression"]
    assert "checkov" not in json.dumps(scanner.read[0])  # what the skip would have hidden is still reported
    assert "checkov" in (release / "stages/dev/templates/Base.template.json").read_text()  # the release is intact


def test_a_release_without_templates_is_refused_before_any_scanner_runs(tmp_path, scanner):
    release = write_release(tmp_path / "release", {})
    with pytest.raises(ScanError, match="the release holds no templates to scan"):
        _scan(tmp_path, release)
    assert scanner.read == []


def test_a_source_scan_takes_the_policy_at_root_when_the_release_carries_none(tmp_path, scanner):
    release = _release(tmp_path, {"Bucket": BUCKET})
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "policy.yaml").write_text(POLICY)
    report = _scan(tmp_path, release, source=True)
    assert report.passed is True and [f.rule_id for f, _ in report.suppressed] == ["FAKE1"]
    assert report.policy_path == "policy.yaml"
    attested = find_attestation(report.release_id, policy_sha256(tmp_path / "src"))
    assert attested is not None and attested.scope == "release+source"


def test_a_source_scan_says_when_the_policy_at_root_differs_from_the_releases(tmp_path, scanner):
    release = _release(tmp_path, {"Bucket": BUCKET}, policy=POLICY)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "policy.yaml").write_text(POLICY.replace("by design", "by design, edited"))
    said: list[str] = []
    report = _scan(tmp_path, release, source=True, progress=said.append)
    assert report.passed is True  # scanned with the release's copy, the one its id covers
    assert "note: policy.yaml differs from the release's copy; re-render to scan with your edit" in said
    said.clear()
    (tmp_path / "src" / "policy.yaml").write_text(POLICY)
    _scan(tmp_path, release, source=True, progress=said.append)
    assert not any(line.startswith("note:") for line in said)


def test_the_tools_are_told_what_is_not_source(tmp_path, scanner):
    """The release, the reports and the policy under the root are not scanned as source (no secrets there)."""
    root = tmp_path / "src"
    release = write_release(root / "release", {"Base": canonical_json({"Resources": {"Bucket": BUCKET}})})
    (root / "policy.yaml").write_text(POLICY)
    seen: list[ScanInput] = []
    real_run = scanner.run
    scanner.run = lambda job: (seen.append(job), real_run(job))[1]  # type: ignore[method-assign]
    gate.scan_release(root, release, source=True)
    assert seen[0].exclude == {"release", "reports/scan.sarif", "reports/scan-junit.xml", "policy.yaml"}
    assert seen[0].source is True and seen[0].release_dir == release.resolve()
    assert (root / "reports" / "scan.sarif").is_file() and (root / "reports" / "scan-junit.xml").is_file()


def test_a_release_only_scan_keeps_only_the_policy_entries_for_its_templates(tmp_path, scanner):
    """Without a source tree a source path's entry is neither used nor unused: it is left out."""
    policy = POLICY + (
        "  - rule: FAKE1\n    resources: [app/settings.py, dev/Base/Bucket, pipelines/training/Train, Other/Bucket]\n"
        "    reason: entries for the source, this stage, a pipeline step and another stack\n"
    )
    release = _release(tmp_path, {"Bucket": BUCKET}, policy=policy)
    report = _scan(tmp_path, release)
    unused = sorted(f.message for f in report.findings)
    assert unused == [
        "suppression of FAKE1 on dev/Base/Bucket matched no finding: remove it",
        "suppression of FAKE1 on pipelines/training/Train matched no finding: remove it",
    ]


def test_each_tool_is_tallied_with_what_the_policy_did_to_its_findings(tmp_path, scanner):
    release = _release(tmp_path, {"Bucket": BUCKET, "Second": BUCKET}, policy=POLICY)
    report = _scan(tmp_path, release)
    checkov, policy = report.tools["checkov"], report.tools["policy"]
    assert (checkov.failed, checkov.suppressed, checkov.passed, checkov.version) == (0, 1, 2, CHECKOV_VERSION)
    assert (checkov.passed_unit, checkov.information_uri, checkov.rules) == (
        "checks",
        "https://example.invalid/rules",
        ["FAKE1"],
    )
    assert (policy.passed, policy.failed) == (1, 0)  # one suppression in use, no policy finding
    assert policy.rules == ["expired-suppression", "inline-suppression", "unused-suppression"]
    assert list(report.tools) == ["checkov", "cfn-lint", "policy"]
    assert report.seconds >= 0 and set(report.timings) == {"checkov", "cfn-lint", "total"}
