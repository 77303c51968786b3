"""The policy gate: cfn-lint, checkov, cdk-nag and a secrets scan over a release, one findings model.

`scan_release` is the entry point (the `gitops scan` verb and the rehearsal call it); policy.yaml at
the repository root is the only place a finding can be suppressed.
"""

from __future__ import annotations

from gitops.scan.findings import Finding
from gitops.scan.gate import ScanReport, ToolStats, scan_release
from gitops.scan.policy import Policy, Suppression, load_policy

__all__ = ["Finding", "Policy", "ScanReport", "Suppression", "ToolStats", "load_policy", "scan_release"]
