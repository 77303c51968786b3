"""The scan's machine reports: one SARIF 2.1.0 log (a run per tool) and JUnit XML for CodeBuild."""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from pathlib import Path

from gitops.files import atomic_write
from gitops.scan.cdk_sources import CdkSources, SourceLocation
from gitops.scan.findings import Finding
from gitops.scan.policy import Suppression
from gitops.scan.result import ScanReport

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def _fingerprint(finding: Finding) -> str:
    key = "|".join([finding.tool, finding.rule_id, finding.target, finding.fingerprint or ""])
    return hashlib.sha256(key.encode()).hexdigest()


def _physical(uri: str, line: int | None) -> dict:
    physical: dict = {"artifactLocation": {"uri": uri, "uriBaseId": "%SRCROOT%"}}
    if line and line > 0:
        physical["region"] = {"startLine": line}
    return physical


def _locations(finding: Finding, uri: str, source: SourceLocation | None) -> dict:
    """Where a reviewer can open it: the CDK source that made the resource when known (the rendered
    template is not in the repository, so code scanning could not annotate it), else the file itself;
    the rendered template stays as a related location."""
    location: dict = {"physicalLocation": _physical(uri, finding.line)}
    if finding.in_template:
        location["logicalLocations"] = [
            {"fullyQualifiedName": finding.target, "kind": "resource" if finding.resource else "module"}
        ]
    if source is None:
        return {"locations": [location]}
    primary = {
        "physicalLocation": _physical(source.file, source.line),
        "logicalLocations": location["logicalLocations"],
        "message": {"text": f"construct {source.construct_path}"},
    }
    related = {"id": 1, "message": {"text": "the rendered template"}, "physicalLocation": location["physicalLocation"]}
    return {"locations": [primary], "relatedLocations": [related]}


def _result(
    finding: Finding,
    rule_index: int,
    uri: str,
    suppression: Suppression | None = None,
    source: SourceLocation | None = None,
) -> dict:
    text = finding.message.rstrip(".") + "."
    others = [f"{f.tool} {f.rule_id}" for f in finding.also]
    if others:
        text += f" Also reported as: {', '.join(others)}."
    if finding.in_template:
        text += f" Resource: {finding.target}."
    if source is not None:
        text += " Rendered as [the template](1)."
    result: dict = {
        "ruleId": finding.rule_id,
        "ruleIndex": rule_index,
        "level": finding.severity,
        "message": {"text": text},
        **_locations(finding, uri, source),
        "partialFingerprints": {"gitopsFinding/v1": _fingerprint(finding)},
        "properties": {"ruleIds": finding.rule_ids, "tools": finding.tools},
    }
    if finding.hint:
        result["properties"]["hint"] = finding.hint
    if suppression is not None:
        entry: dict = {"kind": "external", "status": "accepted", "justification": suppression.reason}
        if suppression.expires is not None:
            entry["properties"] = {"expires": suppression.expires.isoformat()}
        result["suppressions"] = [entry]
    return result


def sarif_log(report: ScanReport) -> dict:
    """All tools in one log: a run per tool of the report, paths relative to the repository."""
    sources = CdkSources(report.root, report.release_dir)
    by_tool: dict[str, list[tuple[Finding, Suppression | None]]] = {tool: [] for tool in report.tools}
    for finding in report.findings:
        by_tool.setdefault(finding.tool, []).append((finding, None))
    for finding, accepted in report.suppressed:
        by_tool.setdefault(finding.tool, []).append((finding, accepted))
    runs = []
    for tool, stats in report.tools.items():
        rules: list[dict] = []
        index: dict[str, int] = {}
        results = []
        for finding, suppression in by_tool[tool]:
            if finding.rule_id not in index:
                index[finding.rule_id] = len(rules)
                rule: dict = {
                    "id": finding.rule_id,
                    "shortDescription": {"text": finding.message[:1000]},
                    "defaultConfiguration": {"level": finding.severity},
                }
                if finding.help_uri:
                    rule["helpUri"] = finding.help_uri
                if finding.hint:
                    rule["help"] = {"text": finding.hint}
                rules.append(rule)
            source = sources.locate(finding.file, finding.resource) if finding.in_template else None
            results.append(_result(finding, index[finding.rule_id], report.repo_path(finding), suppression, source))
        driver: dict = {"name": tool, "version": stats.version, "rules": rules}
        if stats.information_uri:
            driver["informationUri"] = stats.information_uri
        runs.append(
            {
                "tool": {"driver": driver},
                "automationDetails": {"id": f"gitops-scan/{tool}/"},
                "results": results,
                "properties": {
                    "passed": stats.passed,
                    "passedUnit": stats.passed_unit,
                    "failed": stats.failed,
                    "suppressed": stats.suppressed,
                    "rulesRun": len(stats.rules),
                },
            }
        )
    # Which release and policy the verdict is about, for readers of the log (the release page).
    properties = {"releaseId": report.release_id, "policy": report.policy_path, "passed": report.passed}
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": runs, "properties": properties}


def write_sarif(report: ScanReport, path: Path) -> None:
    atomic_write(path, (json.dumps(sarif_log(report), indent=2, sort_keys=True) + "\n").encode())


def junit_xml(report: ScanReport) -> bytes:
    """A suite per tool: a failing case per finding, a skipped one per suppression, a passing one per clean stack."""
    suites = ET.Element("testsuites", name="gitops scan")
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    for tool, stats in report.tools.items():
        suite = ET.SubElement(suites, "testsuite", name=tool, time=f"{stats.seconds:.2f}")
        counts = {"tests": 0, "failures": 0, "skipped": 0}
        dirty = set()
        for finding in (f for f in report.findings if f.tool == tool):
            dirty.add(finding.group)
            case = ET.SubElement(
                suite, "testcase", classname=f"{tool}.{finding.group}", name=f"{finding.rule_id} {finding.target}"
            )
            failure = ET.SubElement(case, "failure", message=finding.message[:500], type=finding.severity)
            failure.text = "\n".join(
                line
                for line in (
                    f"rules: {', '.join(finding.rule_ids)} ({', '.join(finding.tools)})",
                    f"file: {report.repo_path(finding)}" + (f":{finding.line}" if finding.line else ""),
                    f"hint: {finding.hint}" if finding.hint else "",
                )
                if line
            )
            counts["tests"] += 1
            counts["failures"] += 1
        for finding, suppression in ((f, s) for f, s in report.suppressed if f.tool == tool):
            dirty.add(finding.group)
            case = ET.SubElement(
                suite, "testcase", classname=f"{tool}.{finding.group}", name=f"{finding.rule_id} {finding.target}"
            )
            ET.SubElement(case, "skipped", message=f"suppressed by {report.policy_path}: {suppression.reason}")
            counts["tests"] += 1
            counts["skipped"] += 1
        for group in sorted(set(stats.targets) - dirty):
            ET.SubElement(suite, "testcase", classname=f"{tool}.{group}", name=f"{group}: no findings")
            counts["tests"] += 1
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
    for key, value in totals.items():
        suites.set(key, str(value))
    ET.indent(suites)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="utf-8") + b"\n"


def write_junit(report: ScanReport, path: Path) -> None:
    atomic_write(path, junit_xml(report))
