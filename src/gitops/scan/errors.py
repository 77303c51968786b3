"""Error types of the scan: bad input (templates, policy file) and a missing checkov environment."""

from __future__ import annotations

from gitops.errors import GitopsError


class ScanError(GitopsError):
    """A scanner could not run, or its input (a release template, the source tree) is unusable."""

    hint = "fix the named file, or re-run `gitops render` to produce a complete release"


class PolicyError(ScanError):
    """policy.yaml is unparsable or one of its suppressions is invalid."""

    hint = (
        "each suppression needs rule, resources (no wildcards) and a reason of 20+ characters;"
        " optional: expires (YYYY-MM-DD), fingerprint"
    )


class CheckovMissing(ScanError):
    """checkov's own environment is missing or stale and may not be created now."""

    hint = "create it with scripts/setup-checkov (or run `gitops scan` without --no-install)"
