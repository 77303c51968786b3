"""The policy gate: the registered scanners (cfn-lint, checkov, cdk-nag, secrets, pipeline jobs) over a release.

`scan_release` is the entry point (the `gitops scan` verb and the rehearsal call it); policy.yaml at
the repository root is the only place a finding can be suppressed.
"""

from __future__ import annotations

from gitops.scan.findings import Finding
from gitops.scan.gate import scan_release
from gitops.scan.policy import Policy, Suppression, load_policy
from gitops.scan.result import ScanReport, ToolStats

__all__ = ["Finding", "Policy", "ScanReport", "Suppression", "ToolStats", "load_policy", "scan_release"]
