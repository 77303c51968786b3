"""The scanner registry: every scanner follows one protocol, and scan_release is a loop over the registered ones.

A scanner added to the registration list (here a fake one, by monkeypatching the list) has its
findings in the report, the SARIF log, the JUnit file and the manifest record, with no other change.
"""

from __future__ import annotations

import ast
import json
import sys
import xml.etree.ElementTree as ET
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

from gitops.machine import STATE_DIR_ENV, state_dir
from gitops.release.manifest import load_release
from gitops.release.pipelines import canonical_json
from gitops.scan import gate, scan_release
from gitops.scan.attestation import RECORDS_DIR, Attestation
from gitops.scan.findings import Finding, ToolRun
from gitops.scan.scanner import ScanInput
from gitops.scan.scanners import SCANNERS, TOOL_ORDER

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scan_builders import source_tree, write_release  # noqa: E402

SCAN_PACKAGE = Path(gate.__file__).parent


def test_every_registered_scanner_says_who_it_is_and_what_it_counts():
    names = [scanner.name for scanner in SCANNERS]
    assert len(set(names)) == len(names)
    assert TOOL_ORDER == (*names, "policy")
    for scanner in SCANNERS:
        assert scanner.version() and scanner.passed_unit, scanner.name
        assert scanner.information_uri.startswith("https://"), scanner.name
        for method in ("check_ready", "run"):
            assert callable(getattr(scanner, method)), (scanner.name, method)


class FakeScanner:
    """A scanner as a new module would add it: one finding on the Base stack's Key."""

    name = "fake"
    information_uri = "https://example.invalid/fake"
    passed_unit = "things"

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.seen: ScanInput | None = None

    def version(self) -> str:
        return "1.0"

    def check_ready(self, job: ScanInput) -> None:
        return None

    def run(self, job: ScanInput) -> ToolRun:
        self.seen = job
        if self.fail:
            raise RuntimeError("fake scanner broke")
        template = job.templates[0]
        finding = Finding(
            "fake", "FAKE1", "error", "the key is fake", template.rel, stage="dev", stack="Base", resource="Key"
        )
        return ToolRun(
            "fake",
            "1.0",
            [finding],
            passed=3,
            targets=["dev/Base"],
            rules=["FAKE1", "FAKE2"],
            coverage={"AWS::KMS::Key": ["FAKE1", "FAKE2"]},
        )


@pytest.fixture
def tiny(tmp_path):
    body = {"Resources": {"Key": {"Type": "AWS::KMS::Key", "Properties": {"EnableKeyRotation": True}}}}
    release = write_release(tmp_path / "release", {"Base": canonical_json(body)})
    return release, source_tree(tmp_path / "source", secret=False)


def test_a_registered_scanner_is_run_and_reported_everywhere(tiny, tmp_path, monkeypatch):
    release, source = tiny
    fake = FakeScanner()
    monkeypatch.setattr(gate, "SCANNERS", (fake,))
    monkeypatch.setattr(gate, "TOOL_ORDER", ("fake", "policy"))
    report = scan_release(source, release, out_dir=tmp_path / "reports")
    assert fake.seen is not None and [t.stack for t in fake.seen.templates] == ["Base"]
    assert not report.passed and [(f.tool, f.rule_id, f.target) for f in report.findings] == [
        ("fake", "FAKE1", "dev/Base/Key")
    ]
    assert list(report.tools) == ["fake", "policy"]
    assert report.tools["fake"].passed == 3 and report.tools["fake"].passed_unit == "things"
    document = report.to_dict()
    assert document["coverage"]["fake"]["rules"] == 2
    assert document["coverage"]["fake"]["resource_types"]["AWS::KMS::Key"]["rule_ids"] == ["FAKE1", "FAKE2"]
    sarif = json.loads(report.sarif.read_text())
    [run] = [r for r in sarif["runs"] if r["tool"]["driver"]["name"] == "fake"]
    assert run["tool"]["driver"]["informationUri"] == "https://example.invalid/fake"
    assert [r["ruleId"] for r in run["results"]] == ["FAKE1"]
    suites = {s.get("name"): s for s in ET.parse(report.junit).getroot()}
    assert suites["fake"].get("failures") == "1"
    # the verdict is attested for this release (signed, outside the release); the fake scanner is
    # not one whose version the gate later insists on, so read the record itself
    [path] = (state_dir() / RECORDS_DIR).glob(f"{load_release(release).release_id}.*.json")
    record = Attestation.model_validate_json(path.read_bytes())
    assert record.passed is False and record.rules == ["FAKE1 (dev/Base/Key)"] and record.scanners["fake"] == "1.0"


def test_a_scanner_that_breaks_stops_the_scan_with_nothing_written(tiny, tmp_path, monkeypatch):
    release, source = tiny
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "state"))  # no earlier test's verdict on this release
    monkeypatch.setattr(gate, "SCANNERS", (FakeScanner(fail=True),))
    with pytest.raises(RuntimeError, match="fake scanner broke"):
        scan_release(source, release, out_dir=tmp_path / "reports")
    assert not (tmp_path / "reports").exists()
    assert not list((state_dir() / RECORDS_DIR).glob(f"{load_release(release).release_id}.*.json"))


def _module_imports(path: Path) -> set[str]:
    """gitops.scan modules imported at module level (not inside functions or TYPE_CHECKING blocks)."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gitops.scan"):
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("gitops.scan")}
    return found


def test_the_scan_package_has_no_import_cycle():
    modules = {}
    for path in SCAN_PACKAGE.rglob("*.py"):
        parts = path.relative_to(SCAN_PACKAGE.parent.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    graph = {name: {m for m in _module_imports(path) if m in modules and m != name} for name, path in modules.items()}
    # A package's __init__ re-exports its modules; importing a module from it is not a cycle of its own.
    for name in graph:
        graph[name] = {m for m in graph[name] if not name.startswith(m + ".")}
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        pytest.fail(f"import cycle in gitops.scan: {exc.args[1]}")
    assert "gitops.scan.gate" not in graph["gitops.scan.reports"]
