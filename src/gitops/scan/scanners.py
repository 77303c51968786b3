"""The registered scanners of the gate, in the order their findings lead and their reports are written.

Adding a scanner: a module with a `SCANNER` following gitops.scan.scanner.Scanner, its test, and a
line here.
"""

from __future__ import annotations

from gitops.scan import cdk_nag, cfn_lint, checkov, pipeline_jobs, secrets
from gitops.scan.findings import POLICY
from gitops.scan.scanner import Scanner

SCANNERS: tuple[Scanner, ...] = (
    cfn_lint.SCANNER,
    checkov.SCANNER,
    cdk_nag.SCANNER,
    secrets.SCANNER,
    pipeline_jobs.SCANNER,
)
# Every tool a finding can come from, in rank order: the scanners, then the gate's own findings.
TOOL_ORDER: tuple[str, ...] = (*(s.name for s in SCANNERS), POLICY)
