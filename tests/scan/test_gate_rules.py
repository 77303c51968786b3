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
            buckets = [n for n, r in template.body["Resources"].items() if r.get("Type") == "AWS::S3::Bucket"]
            for name in buckets if self.rule else []:
                findings.append(
                    Finding(
                        tool=self.name,
                        rule_id=self.rule,
                        severity="error",
                        message="the bucket is open",
                        file=template.rel,
                        stage=template.stage,
                        stack=template.stack,
                        resource=name,
                    )
                )
        return ToolRun(
            self.name,
            self.release_version,
            findings,
            passed=2,
            notes=[f"read {len(job.templates)} template(s)"],
            targets=job.template_groups,
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
    assert (report.tools["policy"].passed, report.tools["policy"].failed) == (0, 1)  # none in use


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
        "  - rule: FAKE1\n    resources: [app/settings.py, dev/Base/Bucket, pipelines/training/Train, Other/Bucket,"
        " dev, dev/Base, Base/Bucket/Deeper]\n"
        "    reason: entries for the source, this stage, a pipeline step and another stack\n"
    )
    release = _release(tmp_path, {"Bucket": BUCKET}, policy=policy)
    report = _scan(tmp_path, release)
    unused = sorted(f.message for f in report.findings)
    assert unused == [
        "suppression of FAKE1 on dev/Base matched no finding: remove it",
        "suppression of FAKE1 on dev/Base/Bucket matched no finding: remove it",
        "suppression of FAKE1 on pipelines/training/Train matched no finding: remove it",
    ]


def test_each_tool_is_tallied_with_what_the_policy_did_to_its_findings(tmp_path, scanner):
    policy = POLICY + (
        "  - rule: FAKE1\n    resources: [Base/Second, Base/Gone]\n    expires: 2999-01-01\n"
        "    reason: the second bucket is a log target of the first, reviewed until its removal\n"
        "  - rule: FAKE1\n    resources: [Base/Old]\n    expires: 2020-01-01\n"
        "    reason: an exception for a bucket long gone, left here past its expiry date\n"
        "  - rule: FAKE1\n    resources: [Base/Older]\n    expires: 2019-01-01\n"
        "    reason: another exception for a bucket long gone, also left past its expiry\n"
    )
    resources = {"Bucket": BUCKET, "Second": BUCKET, "Third": BUCKET}
    release = _release(tmp_path, resources, policy=policy)
    report = _scan(tmp_path, release)  # today: the real date, after 2020 and before 2999
    checkov, policy_tally = report.tools["checkov"], report.tools["policy"]
    assert (checkov.tool, checkov.failed, checkov.suppressed, checkov.passed) == ("checkov", 1, 2, 2)
    assert (checkov.version, checkov.passed_unit, checkov.information_uri) == (
        CHECKOV_VERSION,
        "checks",
        "https://example.invalid/rules",
    )
    assert (checkov.rules, checkov.coverage, checkov.notes, checkov.targets) == (
        ["FAKE1"],
        {"AWS::S3::Bucket": ["FAKE1"]},
        ["read 1 template(s)"],
        ["dev/Base"],
    )
    # In use: Base/Bucket and Base/Second; Base/Gone is unused, Base/Old and Base/Older expired.
    assert (policy_tally.tool, policy_tally.passed, policy_tally.failed, policy_tally.suppressed) == ("policy", 2, 3, 0)
    assert (policy_tally.passed_unit, policy_tally.version, policy_tally.targets) == (
        "suppressions in use",
        f"{release / RELEASE_POLICY} v1",  # the release's copy, outside the root: its full path
        [],
    )
    assert policy_tally.rules == ["expired-suppression", "inline-suppression", "unused-suppression"]
    assert policy_tally.coverage == {"*": policy_tally.rules} and policy_tally.seconds == 0.0
    assert sorted(f.rule_id for f in report.findings) == [
        "FAKE1",
        "expired-suppression",
        "expired-suppression",
        "unused-suppression",
    ]
    assert [f.resource for f, _ in report.suppressed] == ["Bucket", "Second"]
    assert list(report.tools) == ["checkov", "cfn-lint", "policy"]
    assert set(report.timings) == {"checkov", "cfn-lint", "total"} and report.timings["total"] == report.seconds
    assert all(0 <= s < 60 and s == round(s, 2) for s in report.timings.values())
    assert report.tools["checkov"].seconds == report.timings["checkov"]


def test_an_entry_that_has_expired_on_the_scan_day_no_longer_suppresses(tmp_path, scanner):
    from datetime import date

    policy = POLICY.replace("reason:", "expires: 2026-06-30\n    reason:")
    release = _release(tmp_path, {"Bucket": BUCKET}, policy=policy)
    assert _scan(tmp_path, release, today=date(2026, 6, 30)).passed is True
    later = _scan(tmp_path, release, today=date(2026, 7, 1))
    assert sorted(f.rule_id for f in later.findings) == ["FAKE1", "expired-suppression"]
    assert _scan(tmp_path, release).passed is False  # today's date, by default


def test_the_tools_get_the_release_its_pipelines_and_the_callers_settings(tmp_path, scanner):
    root = tmp_path / "src"
    root.mkdir()
    out = write_release(
        tmp_path / "plain",
        {"Base": canonical_json({"Resources": {"Bucket": BUCKET}})},
        pipelines={"training": canonical_json({"Version": "2020-12-01", "Steps": []})},
    )
    from release_builder import build_release

    manifest = load_release(out)
    files = {rel: (out / rel).read_bytes() for rel in manifest.files} | {"assets/ab/checkov.txt": b"checkov==3\n"}
    release = tmp_path / "release"
    build_release(release, files, manifest.stages, scanned=False, requirements={"checkov": "assets/ab/checkov.txt"})
    jobs: list[ScanInput] = []
    scanner.check_ready = jobs.append  # type: ignore[method-assign]
    said: list[str] = []
    gate.scan_release(root, release, progress=said.append, install_checkov=False)
    job = jobs[0]
    assert (job.root, job.release_dir, job.manifest.release_id) == (root, release, load_release(release).release_id)
    assert [p.name for p in job.pipelines] == ["training"] and [t.stack for t in job.templates] == ["Base"]
    assert (job.install_checkov, job.source, job.progress) == (False, True, said.append)
    assert job.checkov_lock == release / "assets/ab/checkov.txt"
    short = load_release(release).short_id
    assert (
        f"scanning release {short}: 1 templates, 1 pipeline definitions, source at {root}, policy policy.yaml" in said
    )
    jobs.clear()
    gate.scan_release(root, release, source=False)
    assert (jobs[0].install_checkov, jobs[0].source, jobs[0].progress) == (True, False, jobs[0].progress)


def test_a_scan_without_any_policy_file_has_an_empty_policy(tmp_path, scanner):
    release = _release(tmp_path, {"Bucket": BUCKET})
    report = _scan(tmp_path, release, source=True)  # no policy.yaml at root: nothing suppressed, no error
    assert report.passed is False and report.policy_path == "policy.yaml" and report.suppressed == []


def test_a_policy_named_on_the_command_line_must_exist_and_is_shown_as_given(tmp_path, scanner):
    from gitops.scan.policy import PolicyError

    release = _release(tmp_path, {"Bucket": BUCKET})
    missing = tmp_path / "elsewhere" / "policy.yaml"
    with pytest.raises(PolicyError, match=f"^{missing}: policy file not found$"):
        _scan(tmp_path, release, policy_path=missing)
    missing.parent.mkdir()
    missing.write_text(POLICY)
    report = _scan(tmp_path, release, policy_path=missing)
    assert report.passed is True and report.policy_path == str(missing)
    inside = tmp_path / "src" / "reviewed" / "policy.yaml"
    inside.parent.mkdir(parents=True)
    inside.write_text(POLICY)
    assert _scan(tmp_path, release, policy_path=inside).policy_path == "reviewed/policy.yaml"


def test_the_reports_go_where_they_are_asked(tmp_path, scanner):
    release = _release(tmp_path, {"Bucket": BUCKET})
    report = _scan(tmp_path, release)
    assert (report.sarif, report.junit) == (
        tmp_path / "reports" / "scan.sarif",
        tmp_path / "reports" / "scan-junit.xml",
    )
    assert report.sarif.is_file() and not (tmp_path / "src" / "reports").exists()
    chosen = _scan(tmp_path, release, sarif_path=tmp_path / "a.sarif", junit_path=tmp_path / "b.xml")
    assert (chosen.sarif, chosen.junit) == (tmp_path / "a.sarif", tmp_path / "b.xml")
    assert (tmp_path / "a.sarif").is_file() and (tmp_path / "b.xml").is_file()


def test_a_scanner_that_fails_stops_the_scan_after_the_others_finish_and_nothing_is_attested(tmp_path, monkeypatch):
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "state"))
    finished = FixedScanner(rule="", name="cfn-lint", release_version=installed_version("cfn-lint") or "")

    class Broken(FixedScanner):
        def run(self, job: ScanInput) -> ToolRun:
            raise ScanError("checkov: its environment is broken")

    monkeypatch.setattr(gate, "SCANNERS", (Broken(), finished))
    release = _release(tmp_path, {"Bucket": BUCKET})
    with pytest.raises(ScanError, match="^checkov: its environment is broken$"):
        _scan(tmp_path, release)
    assert len(finished.read) == 1  # the other scanner ran to its end
    assert find_attestation(load_release(release).release_id, policy_sha256(release)) is None


def test_a_release_only_scan_says_so_and_a_named_policy_inside_the_root_is_not_source(tmp_path, scanner):
    root = tmp_path / "src"
    (root / "reviewed").mkdir(parents=True)
    (root / "reviewed" / "policy.yaml").write_text(POLICY)
    release = _release(tmp_path, {"Bucket": BUCKET})
    jobs: list[ScanInput] = []
    scanner.check_ready = jobs.append  # type: ignore[method-assign]
    said: list[str] = []
    gate.scan_release(root, release, source=False, progress=said.append, out_dir=tmp_path / "reports")
    short = load_release(release).short_id
    assert f"scanning release {short}: 1 templates, 0 pipeline definitions, release only, policy policy.yaml" in said
    gate.scan_release(root, release, policy_path=root / "reviewed" / "policy.yaml", out_dir=tmp_path / "reports")
    assert "reviewed/policy.yaml" in jobs[1].exclude
