"""What `scan_release` returns: each tool's tally and rule coverage, the findings, the suppressions."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gitops.scan.findings import Finding
from gitops.scan.policy import Suppression


@dataclass
class ToolStats:
    """One tool's tally. `passed` is in the tool's unit (`passed_unit`): checkov's passed checks,
    cfn-lint's clean (rule, template) pairs, cdk-nag's clean resources, detect-secrets' clean files,
    the pipeline rules' clean (rule, step) pairs, policy's suppressions in use."""

    tool: str
    version: str
    passed: int
    failed: int
    suppressed: int
    seconds: float
    targets: list[str] = field(default_factory=list)  # what it looked at, as groups (dev/Base, source)
    notes: list[str] = field(default_factory=list)
    passed_unit: str = ""
    information_uri: str | None = None
    rules: list[str] = field(default_factory=list)  # every rule id it ran
    coverage: dict[str, list[str]] = field(default_factory=dict)  # resource type -> rule ids applied to it

    def to_dict(self) -> dict:
        return {
            "version": self.version,
            "passed": self.passed,
            "passed_unit": self.passed_unit,
            "failed": self.failed,
            "suppressed": self.suppressed,
            "seconds": self.seconds,
            "notes": self.notes,
            "rules": len(self.rules),
        }

    def coverage_dict(self) -> dict:
        return {
            "rules": len(self.rules),
            "rule_ids": self.rules,
            "resource_types": {
                kind: {"rules": len(ids), "rule_ids": ids} for kind, ids in sorted(self.coverage.items())
            },
        }


@dataclass
class ScanReport:
    release_id: str
    root: Path
    release_dir: Path
    policy_path: str
    passed: bool
    findings: list[Finding]  # unsuppressed, one per problem (merged across tools)
    suppressed: list[tuple[Finding, Suppression]]
    tools: dict[str, ToolStats]  # in the registered scanners' order, policy last
    seconds: float
    timings: dict[str, float]
    sarif: Path | None = None
    junit: Path | None = None

    def repo_path(self, finding: Finding) -> str:
        """The finding's file relative to the repository (a release outside it counts as release/)."""
        if finding.in_template:
            try:
                base = self.release_dir.resolve().relative_to(self.root).as_posix()
            except ValueError:
                base = "release"
            return f"{base}/{finding.file}"
        return finding.file

    def to_dict(self) -> dict:
        return {
            "release_id": self.release_id,
            "passed": self.passed,
            "policy": self.policy_path,
            "findings": [{**f.to_dict(), "file": self.repo_path(f)} for f in self.findings],
            "suppressed": [
                {**f.to_dict(), "file": self.repo_path(f), "reason": s.reason, "expires": s.expires}
                for f, s in self.suppressed
            ],
            "tools": {name: stats.to_dict() for name, stats in self.tools.items()},
            "coverage": {name: stats.coverage_dict() for name, stats in self.tools.items() if stats.rules},
            "seconds": self.seconds,
            "timings": self.timings,
            "sarif": str(self.sarif) if self.sarif else None,
            "junit": str(self.junit) if self.junit else None,
        }
