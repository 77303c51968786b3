"""Secrets in the source tree: detect-secrets (Yelp) with all its plugins over what git would commit.

Its inline allowlist comments are not honoured (the filter is off) and each one is reported: a
false positive is suppressed in policy.yaml, pinned to the secret's fingerprint.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

from gitops.scan.errors import ScanError
from gitops.scan.findings import POLICY, Finding, ToolRun
from gitops.scan.scanner import ScanInput, installed_version

_ALLOWLIST_FILTER = "detect_secrets.filters.allowlist.is_line_allowlisted"
# detect-secrets' inline allowlist comment, in any case or spacing (split so this file carries no marker).
_PRAGMA = re.compile("pragma" + r"\s*:\s*" + "allow" + r"\s*list", re.IGNORECASE)
_SKIP_DIRS = {".git", ".venv", "node_modules", "__pycache__", ".gitops", "cdk.out", ".pytest_cache", ".ruff_cache"}
_RUN_TIMEOUT = 900
_CHILD = "import sys; from gitops.scan.secrets import main; sys.exit(main())"
HINT = (
    "remove it from the source (read it from Secrets Manager, SSM Parameter Store or the environment)"
    " and rotate it if it was ever pushed"
)


def source_files(root: Path) -> list[str]:
    """Repository-relative paths of what git tracks or would add (ignored files excluded)."""
    try:
        listed = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout.decode()
        names = sorted({name for name in listed.split("\0") if name})
        return [name for name in names if (root / name).is_file()]
    except (OSError, subprocess.SubprocessError):
        pass
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        found += [(Path(dirpath) / f).relative_to(root).as_posix() for f in filenames]
    return sorted(found)


def run_secrets_scan(root: Path, files: list[str] | None = None, exclude: set[str] | None = None) -> ToolRun:
    """Scan each file in-process, one at a time (no process pool: other scanners run in threads).

    exclude: repository-relative files or directories not to scan (the scan's own reports, a release).
    """
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.core.scan import scan_file
    from detect_secrets.settings import default_settings, get_settings

    root = root.resolve()
    files = source_files(root) if files is None else files
    skipped = {e.rstrip("/") for e in exclude or ()}
    files = [f for f in files if not any(f == e or f.startswith(e + "/") for e in skipped)]
    mapping: dict[str, type] = get_mapping_from_secret_type_to_class()
    plugin_of = {kind: cls.__name__ for kind, cls in mapping.items()}
    findings: list[Finding] = []
    dirty: set[str] = set()
    with default_settings():
        get_settings().disable_filters(_ALLOWLIST_FILTER)
        for rel in files:
            for secret in scan_file(str(root / rel)):
                dirty.add(rel)
                findings.append(
                    Finding(
                        tool="detect-secrets",
                        rule_id=plugin_of.get(secret.type, secret.type.replace(" ", "")),
                        severity="error",
                        message=f"{secret.type} hard-coded in source",
                        file=rel,
                        line=secret.line_number or None,
                        fingerprint=secret.secret_hash,
                        hint=HINT,
                    )
                )
    findings += _allowlist_comments(root, files)
    plugins = sorted(set(plugin_of.values()))
    return ToolRun(
        tool="detect-secrets",
        version=metadata.version("detect-secrets"),
        findings=findings,
        passed=len(files) - len(dirty),
        targets=["source"],
        rules=plugins,
        coverage={"source": plugins},
    )


def _allowlist_comments(root: Path, files: list[str]) -> list[Finding]:
    found = []
    for rel in files:
        try:
            text = (root / rel).read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if not _PRAGMA.search(text):
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if _PRAGMA.search(line):
                found.append(
                    Finding(
                        tool=POLICY,
                        rule_id="inline-suppression",
                        severity="error",
                        message="detect-secrets allowlist comment: suppressions live only in policy.yaml",
                        file=rel,
                        line=number,
                        hint="remove the comment; suppress a false positive in policy.yaml with its fingerprint",
                    )
                )
    return found


class SecretsScanner:
    """detect-secrets over what git tracks, in a child process (pure-Python scanning would share cfn-lint's GIL).

    A plain child reaped by subprocess.run, not a multiprocessing pool: a spawn pool starts a
    resource-tracker process that outlives the verb (a defunct python under a non-reaping init).
    """

    name = "detect-secrets"
    information_uri = "https://github.com/Yelp/detect-secrets"
    passed_unit = "clean source files"

    def version(self) -> str:
        return installed_version("detect-secrets") or "not installed here"  # a deploy build scans no source

    def check_ready(self, job: ScanInput) -> None:
        return None

    def run(self, job: ScanInput) -> ToolRun:
        if not job.source:
            return ToolRun(self.name, "not run", [], 0, notes=["release-only scan: no source tree to scan"])
        cmd = [sys.executable, "-c", _CHILD, str(job.root), *sorted(job.exclude)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=_RUN_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ScanError(f"detect-secrets: could not run: {exc}") from exc
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise ScanError(f"detect-secrets: exited {done.returncode}: {tail}")
        return tool_run_from_dict(json.loads(done.stdout))


def tool_run_from_dict(data: dict) -> ToolRun:
    """A ToolRun back from dataclasses.asdict (what the child process prints)."""
    findings = [Finding(**{k: v for k, v in f.items() if k != "also"}) for f in data.pop("findings")]
    return ToolRun(findings=findings, **data)


SCANNER = SecretsScanner()


def main() -> int:
    """The child process (argv: <root> [excluded path ...]): prints the ToolRun as JSON."""
    root, *excluded = sys.argv[1:]
    print(json.dumps(asdict(run_secrets_scan(Path(root), None, set(excluded)))))
    return 0
