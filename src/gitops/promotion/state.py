"""The embedded target's state store: approvals, verifications and pipeline executions on disk.

Every write is atomic (temp file + rename) under an exclusive lock, so a second terminal can
approve while the first waits, and a crash never leaves a half-written record.

Approvals and verifications are signed with this machine's key (gitops.machine), as CodePipeline's
own records are only written by CodePipeline: an approval is requested by the local pipeline
runner for one execution, with a fresh token, and decided through `gitops approve`; a record
edited or written by hand fails its MAC and counts for nothing. Its authority is the user
account's: whoever can read the key (0600, outside any checkout) can sign.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from gitops.errors import GitopsError
from gitops.files import atomic_write
from gitops.machine import sign, signed_by_this_machine

Decision = Literal["waiting", "approved", "rejected"]
M = TypeVar("M", "Approval", "Verification")


class ApprovalMissing(GitopsError):
    hint = "approve exactly this release id: `gitops approve --release <id>` (see `gitops status`)"


class ApprovalForged(ApprovalMissing):
    """A local approval or verification record that this machine's engine did not sign."""

    hint = (
        "approvals are recorded by the pipeline runner and decided with `gitops approve`; delete the file"
        " and re-run the stage's pipeline (`gitops rehearse`)"
    )


class Approval(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stage: str  # the stage whose pipeline holds the gate (it promotes onwards)
    release_id: str
    status: Decision
    requested_at: str
    execution_id: str | None = None  # the pipeline execution whose approval action asked
    token: str | None = None  # that action's approval token (fresh per request, as CodePipeline's)
    diff_summary: str | None = None
    decided_at: str | None = None
    decided_by: str | None = None
    summary: str | None = None
    mac: str = ""

    def body(self) -> bytes:
        return json.dumps(self.model_dump(mode="json", exclude={"mac"}), sort_keys=True).encode()

    def signed(self) -> Approval:
        return self.model_copy(update={"mac": sign(self.body())})


class Verification(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stage: str
    release_id: str
    at: str
    execution_id: str | None = None
    details: dict[str, Any] = {}
    mac: str = ""

    def body(self) -> bytes:
        return json.dumps(self.model_dump(mode="json", exclude={"mac"}), sort_keys=True).encode()


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
    def record_verified(
        self, stage: str, release_id: str, details: dict | None = None, execution_id: str | None = None
    ) -> None:
        record = Verification(
            stage=stage, release_id=release_id, at=now(), execution_id=execution_id, details=details or {}
        )
        with self._locked():
            self._write(
                f"verified/{stage}/{release_id}.json",
                record.model_copy(update={"mac": sign(record.body())}).model_dump(),
            )

    def verification(self, stage: str, release_id: str) -> Verification | None:
        """The signed record that release_id was deployed and verified in stage (ApprovalForged if not ours)."""
        rel = f"verified/{stage}/{release_id}.json"
        data = self._read(rel)
        if data is None:
            return None
        record = self._validated(Verification, data, rel)
        if (record.stage, record.release_id) != (stage, release_id):
            raise ApprovalForged(f"{self.dir / rel}: the record is for another release or stage; it counts for nothing")
        return record

    def is_verified(self, stage: str, release_id: str) -> bool:
        return self.verification(stage, release_id) is not None

    # -- approvals -------------------------------------------------------------------------
    def _approval_path(self, stage: str, release_id: str) -> str:
        return f"approvals/{stage}/{release_id}.json"

    def _validated(self, model: type[M], data: Any, rel: str) -> M:
        try:
            record = model.model_validate(data)
        except ValueError as exc:
            raise ApprovalForged(f"{self.dir / rel}: not a record of the engine; it counts for nothing") from exc
        if not signed_by_this_machine(record.body(), record.mac):
            raise ApprovalForged(
                f"{self.dir / rel}: not signed by this machine's engine (edited or written by hand);"
                " it counts for nothing"
            )
        return record

    def request_approval(
        self, stage: str, release_id: str, execution_id: str | None = None, diff_summary: str | None = None
    ) -> Approval:
        """Open the gate for this release in this execution, with a fresh token.

        As in CodePipeline, every execution asks anew: a decision made in an earlier execution is
        kept only when the same execution asks again (a retried action) or no execution is named.
        A record that fails its MAC is replaced: it never counted.
        """
        with self._locked():
            with contextlib.suppress(ApprovalForged):
                existing = self.approval(stage, release_id)
                if existing and existing.status != "waiting" and existing.execution_id == execution_id:
                    return existing
            record = Approval(
                stage=stage,
                release_id=release_id,
                status="waiting",
                requested_at=now(),
                execution_id=execution_id,
                token=secrets.token_hex(16),
                diff_summary=diff_summary,
            ).signed()
            self._write(self._approval_path(stage, release_id), record.model_dump())
            return record

    def approval(self, stage: str, release_id: str) -> Approval | None:
        """The signed approval record of release_id in stage (ApprovalForged if this machine did not sign it)."""
        rel = self._approval_path(stage, release_id)
        data = self._read(rel)
        if data is None:
            return None
        record = self._validated(Approval, data, rel)
        if (record.stage, record.release_id) != (stage, release_id):
            raise ApprovalForged(f"{self.dir / rel}: the record is for another release or stage; it counts for nothing")
        return record

    def approvals(self, stage: str | None = None) -> list[Approval]:
        """Every signed approval record (of one stage), oldest request first; unsigned ones are left out."""
        base = self.dir / "approvals"
        paths = sorted(base.glob(f"{stage or '*'}/*.json")) if base.exists() else []
        records = []
        for path in paths:
            with contextlib.suppress(ApprovalForged):
                found = self.approval(path.parent.name, path.stem)
                if found is not None:
                    records.append(found)
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
                raise ApprovalMissing(
                    f"release {release_id[:12]} in stage {stage} was already {record.status}"
                    f" by {record.decided_by} at {record.decided_at}"
                )
            decided = record.model_copy(
                update={
                    "status": "approved" if approved else "rejected",
                    "decided_at": now(),
                    "decided_by": _who(),
                    "summary": summary,
                }
            ).signed()
            self._write(self._approval_path(stage, release_id), decided.model_dump())
            return decided

    def wait_for_decision(
        self,
        stage: str,
        release_id: str,
        *,
        token: str | None = None,
        poll: float = 0.2,
        timeout: float | None = None,
        on_wait: Callable[[float], None] | None = None,
    ) -> Approval:
        """Block until the request (with this token, when given) is decided."""
        started = time.monotonic()
        while True:
            record = self.approval(stage, release_id)
            if record is not None and token is not None and record.token != token:
                raise ApprovalMissing(
                    f"the approval request for release {release_id[:12]} in stage {stage} was replaced by"
                    f" execution {record.execution_id}'s; this execution's approval can no longer be decided"
                )
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
