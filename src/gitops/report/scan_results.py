"""The scan results a page shows, read back from the SARIF log `gitops scan` wrote (reports/scan.sarif)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from gitops.errors import GitopsError


class ScanResultsError(GitopsError):
    hint = "give the SARIF log `gitops scan --sarif` wrote for this release (default reports/scan.sarif)"


@dataclass
class SuppressedFinding:
    tool: str
    rule_id: str
    target: str  # Stack/LogicalId, pipelines/<name>/<step>, or a source path
    reason: str
    expires: str | None = None


@dataclass
class ToolResult:
    tool: str
    version: str
    passed: int
    passed_unit: str
    failed: int
    suppressed: int


@dataclass
class ScanResults:
    source: str  # the file they were read from
    release_id: str | None  # the release the log says it scanned (None: a log from before it said so)
    passed: bool
    tools: list[ToolResult] = field(default_factory=list)
    suppressions: list[SuppressedFinding] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # "tool rule: message (target)"


def _target(result: dict) -> str:
    for location in result.get("locations") or []:
        for logical in location.get("logicalLocations") or []:
            if logical.get("fullyQualifiedName"):
                return str(logical["fullyQualifiedName"])
        uri = ((location.get("physicalLocation") or {}).get("artifactLocation") or {}).get("uri")
        if uri:
            return str(uri)
    return "?"


def read_scan_results(path: Path) -> ScanResults:
    """Per tool: passed, failed and suppressed counts; each suppression with its reason and expiry."""
    try:
        log = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScanResultsError(f"{path}: cannot be read: {exc.strerror}") from exc
    except ValueError as exc:
        raise ScanResultsError(f"{path}: not JSON: {exc}") from exc
    if not isinstance(log, dict) or log.get("version") != "2.1.0" or not isinstance(log.get("runs"), list):
        raise ScanResultsError(f"{path}: not a SARIF 2.1.0 log")
    props = log.get("properties") or {}
    found = ScanResults(source=str(path), release_id=props.get("releaseId"), passed=bool(props.get("passed")))
    unsuppressed = 0
    for run in log["runs"]:
        driver = run["tool"]["driver"]
        tool = str(driver.get("name", "?"))
        counts = run.get("properties") or {}
        found.tools.append(
            ToolResult(
                tool,
                str(driver.get("version", "")),
                int(counts.get("passed", 0)),
                str(counts.get("passedUnit", "")),
                int(counts.get("failed", 0)),
                int(counts.get("suppressed", 0)),
            )
        )
        for result in run.get("results") or []:
            suppressions = result.get("suppressions") or []
            if suppressions:
                first = suppressions[0]
                found.suppressions.append(
                    SuppressedFinding(
                        tool,
                        str(result.get("ruleId", "?")),
                        _target(result),
                        str(first.get("justification", "")),
                        (first.get("properties") or {}).get("expires"),
                    )
                )
            else:
                unsuppressed += 1
                text = str((result.get("message") or {}).get("text", ""))
                found.failures.append(f"{tool} {result.get('ruleId', '?')}: {text}")
    if "passed" not in props:
        found.passed = unsuppressed == 0
    return found
