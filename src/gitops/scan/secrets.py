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
from importlib import metadata
from pathlib import Path

from gitops.scan.attestation import engine_digest
from gitops.scan.errors import ScanError
from gitops.scan.findings import POLICY, Finding, ToolRun
from gitops.scan.result_cache import ScanCache, combine, tool_run_from_dict, tool_run_to_dict, unit_digest
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


def scanned_files(root: Path, exclude: set[str] | None = None) -> list[str]:
    """What the secrets scan reads: source_files minus exclude (the scan's own reports, a release)."""
    skipped = {e.rstrip("/") for e in exclude or ()}
    return [f for f in source_files(root) if not any(f == e or f.startswith(e + "/") for e in skipped)]


def run_secrets_scan(root: Path, files: list[str] | None = None, exclude: set[str] | None = None) -> ToolRun:
    """Scan each file in-process, one at a time, as one ToolRun.

    exclude: repository-relative files or directories not to scan (the scan's own reports, a release).
    """
    root = root.resolve()
    files = scanned_files(root, exclude) if files is None else files
    runs = run_secrets_scan_by_file(root, files)
    return combine("detect-secrets", metadata.version("detect-secrets"), [runs[f] for f in files])


def run_secrets_scan_by_file(root: Path, files: list[str]) -> dict[str, ToolRun]:
    """One ToolRun per file (repository-relative): what the scan cache keeps per file digest."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.core.scan import scan_file
    from detect_secrets.settings import default_settings, get_settings

    mapping: dict[str, type] = get_mapping_from_secret_type_to_class()
    plugin_of = {kind: cls.__name__ for kind, cls in mapping.items()}
    plugins = sorted(set(plugin_of.values()))
    version = metadata.version("detect-secrets")
    runs: dict[str, ToolRun] = {}
    with default_settings():
        get_settings().disable_filters(_ALLOWLIST_FILTER)
        for rel in files:
            findings = [
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
                for secret in scan_file(str(root / rel))
            ]
            runs[rel] = ToolRun(
                tool="detect-secrets",
                version=version,
                findings=findings + _allowlist_comments(root, [rel]),
                passed=0 if findings else 1,
                targets=["source"],
                rules=plugins,
                coverage={"source": plugins},
            )
    return runs


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
        root = job.root.resolve()
        version = self.version()
        cache = ScanCache(self.name, version, engine_digest(), job.policy_sha256, enabled=job.use_cache)
        files = scanned_files(root, set(job.exclude))
        units = {rel: unit_digest(rel, (root / rel).read_bytes()) for rel in files}
        cached = {rel: cache.get(unit) for rel, unit in units.items()}
        fresh = _scan_in_child(root, [rel for rel in files if cached[rel] is None]) if cache.misses else {}
        for rel, run in fresh.items():
            cache.put(units[rel], run)
        combined = combine(self.name, version, [cached[rel] or fresh[rel] for rel in files])
        combined.targets = ["source"]
        combined.notes.append(cache.note())
        return combined


def _scan_in_child(root: Path, files: list[str]) -> dict[str, ToolRun]:
    """run_secrets_scan_by_file in a plain child reaped by subprocess.run (the file list on its stdin)."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, str(root)],
            input=json.dumps(files),
            capture_output=True,
            text=True,
            timeout=_RUN_TIMEOUT,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ScanError(f"detect-secrets: could not run: {exc}") from exc
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ScanError(f"detect-secrets: exited {done.returncode}: {tail}")
    return {rel: tool_run_from_dict(run) for rel, run in json.loads(done.stdout).items()}


SCANNER = SecretsScanner()


def main() -> int:
    """The child process (argv: <root>; stdin: the files as a JSON list): prints {file: ToolRun} as JSON."""
    files = json.loads(sys.stdin.read())
    runs = run_secrets_scan_by_file(Path(sys.argv[1]), files)
    print(json.dumps({rel: tool_run_to_dict(run) for rel, run in runs.items()}))
    return 0
