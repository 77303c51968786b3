"""Scan attestations: this machine's keyed verdict of a scan on one release under one policy, and the gate.

A scan record inside a release can be rewritten by whoever holds the release; an attestation
cannot. It is an HMAC-SHA256, under a key created 0600 in this machine's state directory on first
use, over (release id, policy digest, scanner versions, verdict). A record edited by hand, or
brought from another machine, fails the MAC and counts for nothing.

`require_gate` is what publish, deploy and promote call before they change anything: it accepts a
release only with a valid attestation that it passed under the policy the release carries, or it
scans the release itself. In CodeBuild each build is a fresh container with a fresh key, so the
only attestation a build can find is one its own scan wrote.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from gitops.errors import GitopsError
from gitops.files import atomic_write
from gitops.machine import sign, signed_by_this_machine, state_dir
from gitops.progress import Progress
from gitops.release.manifest import RELEASE_POLICY, load_release
from gitops.scan.scanner import installed_version

RECORDS_DIR = "attestations"
# Scanners whose version decides a verdict; an attestation made with other versions is not reused.
# cdk-nag ran during render: its version is part of the release, so the release id covers it.
CHECKED_SCANNERS = ("engine", "cfn-lint", "checkov")
Scope = Literal["release", "release+source"]


class GateRefused(GitopsError):
    """The release failed its policy scan (or could not be scanned here)."""

    hint = "`gitops scan --release <dir>` lists the findings; fix them (or suppress one in policy.yaml), re-render"


class AttestationError(GitopsError):
    """The attestation store is unusable."""

    hint = "delete the named file: the next scan writes a new attestation"


class Attestation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    release_id: str
    policy_sha256: str
    scanners: dict[str, str]
    scope: Scope  # release: templates and the release's policy only; release+source: the source tree too
    passed: bool
    findings: int
    rules: list[str]  # "rule (target)" of the first unsuppressed findings, for the refusal message
    scanned_at: str
    mac: str = ""

    def body(self) -> bytes:
        return json.dumps(self.model_dump(mode="json", exclude={"mac"}), sort_keys=True).encode()


def _sign(attestation: Attestation) -> str:
    return sign(attestation.body())


def _record_path(release_id: str, policy_sha256: str) -> Path:
    return state_dir() / RECORDS_DIR / f"{release_id}.{policy_sha256[:16]}.json"


def policy_sha256(release_dir: Path) -> str:
    """The digest of the policy a release carries (of no policy at all when it carries none)."""
    path = release_dir / RELEASE_POLICY
    return hashlib.sha256(path.read_bytes() if path.is_file() else b"").hexdigest()


@cache
def engine_digest() -> str:
    """sha256 over the engine's own files as installed: the gate's logic is a scanner too."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            digest.update(path.relative_to(package).as_posix().encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).hexdigest().encode() + b"\n")
    return digest.hexdigest()


def current_scanners() -> dict[str, str | None]:
    """The versions a scan run here now would use (None: not installed here)."""
    from gitops.scan.checkov import CHECKOV_VERSION

    return {"engine": engine_digest(), "cfn-lint": installed_version("cfn-lint"), "checkov": CHECKOV_VERSION}


def record_attestation(
    *,
    release_id: str,
    policy_sha256: str,
    scanners: dict[str, str],
    scope: Scope,
    passed: bool,
    findings: int,
    rules: list[str],
) -> Attestation:
    """Sign and store a scan's verdict (the scan calls this; nothing else should)."""
    unsigned = Attestation(
        release_id=release_id,
        policy_sha256=policy_sha256,
        scanners=scanners,
        scope=scope,
        passed=passed,
        findings=findings,
        rules=rules[:10],
        scanned_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    signed = unsigned.model_copy(update={"mac": _sign(unsigned)})
    path = _record_path(release_id, policy_sha256)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(path, signed.model_dump_json(indent=2) + "\n")
    return signed


def find_attestation(release_id: str, policy_sha256: str) -> Attestation | None:
    """This machine's valid attestation for exactly this release and policy, made by today's scanners."""
    path = _record_path(release_id, policy_sha256)
    try:
        found = Attestation.model_validate_json(path.read_bytes())
    except (FileNotFoundError, ValidationError, ValueError):
        return None
    if not signed_by_this_machine(found.body(), found.mac):
        return None  # edited by hand, or signed by another machine's key
    if (found.release_id, found.policy_sha256) != (release_id, policy_sha256):
        return None
    now = current_scanners()
    if any(found.scanners.get(name) != now[name] for name in CHECKED_SCANNERS):
        return None
    return found


def require_gate(release_dir: Path, *, root: Path | None = None, progress: Progress | None = None) -> Attestation:
    """Refuse (GateRefused) unless this release passed its policy scan on this machine; scan it if need be.

    The scan it runs is release-only (templates, cdk-nag's report, the policy the release carries):
    a stage holds no source tree. Reports go under <root>/reports/ (root: the working directory).
    """
    say = progress or (lambda _msg: None)
    release_dir = Path(release_dir)
    manifest = load_release(release_dir)
    digest = policy_sha256(release_dir)
    found = find_attestation(manifest.release_id, digest)
    if found is None:
        if current_scanners()["cfn-lint"] is None:
            raise GateRefused(
                f"release {manifest.short_id}: no valid scan of it on this machine, and its scanners are not installed"
                " here to run one",
                hint="install the release's scan-requirements.txt (`pip install --require-hashes -r ...`),"
                " then `gitops scan --release <dir> --no-source`",
            )
        from gitops.scan.gate import scan_release

        say(f"gate: no valid scan of release {manifest.short_id} under its policy on this machine: scanning it now")
        scan_release((root or Path.cwd()), release_dir, source=False, progress=say)
        found = find_attestation(manifest.release_id, digest)
        if found is None:
            raise AttestationError(f"{state_dir() / RECORDS_DIR}: the scan's attestation cannot be read back")
    if not found.passed:
        shown = ", ".join(found.rules[:3]) + (", ..." if found.findings > 3 else "")
        raise GateRefused(
            f"release {manifest.short_id} failed its policy scan: {found.findings} finding(s): {shown}"[:240]
        )
    say(f"gate: release {manifest.short_id} passed its policy scan ({found.scope} scan at {found.scanned_at})")
    return found
