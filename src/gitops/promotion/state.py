"""The embedded target's state store: approvals, verifications and pipeline executions on disk.

Every write is atomic (temp file + rename) under an exclusive lock, so a second terminal can
approve while the first waits, and a crash never leaves a half-written record.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from gitops.errors import GitopsError
from gitops.files import atomic_write

Decision = Literal["waiting", "approved", "rejected"]


class ApprovalMissing(GitopsError):
    hint = "approve exactly this release id: `gitops approve --release <id>` (see `gitops status`)"


class Approval(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stage: str  # the stage whose pipeline holds the gate (it promotes onwards)
    release_id: str
    status: Decision
    requested_at: str
    execution_id: str | None = None
    diff_summary: str | None = None
    decided_at: str | None = None
    decided_by: str | None = None
    summary: str | None = None


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _who() -> str:
    return os.environ.get("GITOPS_APPROVER") or os.environ.get("USER") or "unknown"


class LocalState:
    def __init__(self, local_dir: Path) -> None:
        self.dir = local_dir / "state"

    # -- low level -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _write(self, rel: str, data: Any) -> None:
        path = self.dir / rel
        atomic_write(path, json.dumps(data, indent=2, sort_keys=True))

    def _read(self, rel: str) -> Any | None:
        try:
            return json.loads((self.dir / rel).read_text())
        except FileNotFoundError:
            return None

    # -- verifications ---------------------------------------------------------------------
    def record_verified(self, stage: str, release_id: str, details: dict | None = None) -> None:
        with self._locked():
            self._write(f"verified/{stage}/{release_id}.json", {"at": now(), **(details or {})})

    def is_verified(self, stage: str, release_id: str) -> bool:
        return self._read(f"verified/{stage}/{release_id}.json") is not None

    # -- approvals -------------------------------------------------------------------------
    def _approval_path(self, stage: str, release_id: str) -> str:
        return f"approvals/{stage}/{release_id}.json"

    def request_approval(
        self, stage: str, release_id: str, execution_id: str | None = None, diff_summary: str | None = None
    ) -> Approval:
        """Open (or re-open) the gate for this release; an earlier decision for it is kept."""
        with self._locked():
            existing = self.approval(stage, release_id)
            if existing and existing.status != "waiting":
                return existing
            record = Approval(
                stage=stage,
                release_id=release_id,
                status="waiting",
                requested_at=now(),
                execution_id=execution_id,
                diff_summary=diff_summary,
            )
            self._write(self._approval_path(stage, release_id), record.model_dump())
            return record

    def approval(self, stage: str, release_id: str) -> Approval | None:
        data = self._read(self._approval_path(stage, release_id))
        return Approval.model_validate(data) if data else None

    def approvals(self, stage: str | None = None) -> list[Approval]:
        base = self.dir / "approvals"
        paths = sorted(base.glob(f"{stage or '*'}/*.json")) if base.exists() else []
        records = [Approval.model_validate_json(p.read_text()) for p in paths]
        return sorted(records, key=lambda a: a.requested_at)

    def waiting(self) -> list[Approval]:
        return [a for a in self.approvals() if a.status == "waiting"]

    def decide(self, stage: str, release_id: str, approved: bool, summary: str | None = None) -> Approval:
        """The approval click: only a waiting gate for exactly this release id can be decided."""
        with self._locked():
            record = self.approval(stage, release_id)
            if record is None:
                raise ApprovalMissing(f"no approval was requested for release {release_id[:12]} in stage {stage}")
            if record.status != "waiting":
                raise ApprovalMissing(f"release {release_id[:12]} in stage {stage} was already {record.status}")
            decided = record.model_copy(
                update={
                    "status": "approved" if approved else "rejected",
                    "decided_at": now(),
                    "decided_by": _who(),
                    "summary": summary,
                }
            )
            self._write(self._approval_path(stage, release_id), decided.model_dump())
            return decided

    def wait_for_decision(
        self,
        stage: str,
        release_id: str,
        *,
        poll: float = 0.2,
        timeout: float | None = None,
        on_wait: Callable[[float], None] | None = None,
    ) -> Approval:
        started = time.monotonic()
        while True:
            record = self.approval(stage, release_id)
            if record is not None and record.status != "waiting":
                return record
            waited = time.monotonic() - started
            if timeout is not None and waited > timeout:
                raise ApprovalMissing(f"no decision on release {release_id[:12]} within {timeout:.0f}s")
            if on_wait:
                on_wait(waited)
            time.sleep(poll)

    # -- executions ------------------------------------------------------------------------
    def save_execution(self, stage: str, execution_id: str, record: dict) -> None:
        with self._locked():
            self._write(f"executions/{stage}/{execution_id}.json", record)

    def executions(self, stage: str) -> list[dict]:
        base = self.dir / "executions" / stage
        records = [json.loads(p.read_text()) for p in base.glob("*.json")] if base.exists() else []
        return sorted(records, key=lambda r: r.get("started_at", ""))
