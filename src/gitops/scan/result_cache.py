"""Scan results cached per scanned unit (a template, a source file), MAC'd with this machine's key.

A scanner's raw results on one unit depend only on the unit's bytes and place, the tool and its
version, the gate's own rules and settings, and (kept in the key, to be safe) the policy. The
key is the sha256 of all of them; an unchanged release re-scans from the cache, and the tools
see only the units whose digest changed.

Trust: the cache lives in this machine's state directory beside the attestation key
(gitops.machine), never in a checkout, and every entry carries an HMAC-SHA256 under that key over
its key and results, exactly like an attestation. An entry edited by hand, or brought from another
machine, fails the MAC and counts for nothing: its unit is scanned again and the entry rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

from gitops.files import atomic_write
from gitops.machine import sign, signed_by_this_machine, state_dir
from gitops.scan.findings import Finding, ToolRun

CACHE_DIR = "scan-cache"
NO_CACHE_ENV = "GITOPS_SCAN_NO_CACHE"  # set (to anything but empty): every unit is scanned afresh


def unit_digest(name: str, data: bytes) -> str:
    """The identity of one scanned unit: where it is (findings name it) and its bytes."""
    return hashlib.sha256(name.encode() + b"\0" + data).hexdigest()


def finding_from_dict(data: dict) -> Finding:
    return Finding(**{k: v for k, v in data.items() if k != "also"})


def tool_run_to_dict(run: ToolRun) -> dict:
    return asdict(run)


def tool_run_from_dict(data: dict) -> ToolRun:
    """A ToolRun back from tool_run_to_dict (what a child process prints, what an entry holds)."""
    fields = dict(data)
    findings = [finding_from_dict(f) for f in fields.pop("findings")]
    return ToolRun(findings=findings, **fields)


def combine(tool: str, version: str, runs: list[ToolRun]) -> ToolRun:
    """One ToolRun from per-unit runs: findings in order, passed summed, rules and coverage united."""
    coverage: dict[str, set[str]] = {}
    for run in runs:
        for kind, ids in run.coverage.items():
            coverage.setdefault(kind, set()).update(ids)
    return ToolRun(
        tool=tool,
        version=version,
        findings=[f for run in runs for f in run.findings],
        passed=sum(run.passed for run in runs),
        rules=sorted({rule for run in runs for rule in run.rules}),
        coverage={kind: sorted(ids) for kind, ids in sorted(coverage.items())},
    )


class ScanCache:
    """One tool's cached results under one (version, rules/config digest, policy digest)."""

    def __init__(self, tool: str, version: str, config_digest: str, policy_sha256: str, *, enabled: bool = True):
        self.tool = tool
        self._prefix = json.dumps([tool, version, config_digest, policy_sha256]).encode()
        self.enabled = enabled and not os.environ.get(NO_CACHE_ENV)
        self.hits = 0
        self.misses = 0

    def key(self, unit: str) -> str:
        return hashlib.sha256(self._prefix + b"\0" + unit.encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return state_dir() / CACHE_DIR / self.tool / f"{key}.json"

    @staticmethod
    def _body(key: str, run: dict) -> bytes:
        return json.dumps({"key": key, "run": run}, sort_keys=True).encode()

    def get(self, unit: str) -> ToolRun | None:
        """The cached run on this unit, only if this machine signed exactly it under exactly this key."""
        if not self.enabled:
            self.misses += 1
            return None
        key = self.key(unit)
        try:
            entry = json.loads(self._path(key).read_bytes())
            body = self._body(entry["key"], entry["run"])
            trusted = entry["key"] == key and signed_by_this_machine(body, str(entry["mac"]))
            found = tool_run_from_dict(entry["run"]) if trusted else None
        except (OSError, ValueError, KeyError, TypeError):
            found = None
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    def put(self, unit: str, run: ToolRun) -> None:
        if not self.enabled:
            return
        key = self.key(unit)
        data = tool_run_to_dict(run)
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        entry = {"key": key, "run": data, "mac": sign(self._body(key, data))}
        atomic_write(path, json.dumps(entry, sort_keys=True) + "\n")

    def note(self) -> str:
        if not self.enabled:
            return f"cache: off, {self.misses} scanned"
        return f"cache: {self.hits} unchanged, {self.misses} scanned"
