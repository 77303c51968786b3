"""What the release page shows, gathered once: per stage the diff, pins, evidence and history; the scan results."""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from gitops.config import StageConfig
from gitops.errors import aws_error_text
from gitops.release.diff import AssetChange, StageDiff, diff_releases
from gitops.release.manifest import ReleaseManifest, load_release, load_stage_config_from_release
from gitops.report.scan_results import ScanResults
from gitops.target import Target

log = logging.getLogger(__name__)
PIN_FILES = {"model": "model.json", "app image": "app.json"}  # release-level pins, when the release carries them
OK, MISSING, WAITING, FAILED, NOT_READ = "ok", "missing", "waiting", "failed", "not read"


@dataclass
class PinChange:
    """A pinned artifact (the served model, the app image): what the stage holds and what the release brings."""

    name: str
    file: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    @property
    def changed(self) -> bool:
        return self.before != self.after


@dataclass
class EvidenceItem:
    """One thing promotion checks, and what it found when the page was made."""

    label: str
    state: str  # OK | MISSING | WAITING | FAILED | NOT_READ
    detail: str


@dataclass
class HistoryEntry:
    commit: str
    release_id: str | None
    subject: str
    date: str


@dataclass
class StagePage:
    stage: str
    account: str
    region: str
    promote_to: str | None
    held_release: str | None  # what the stage holds now (None: nothing yet, or not read)
    against: str  # what the diff compares with, in words
    diff: StageDiff
    pins: list[PinChange] = field(default_factory=list)
    evidence: list[EvidenceItem] = field(default_factory=list)  # stages that promote onwards
    history: list[HistoryEntry] | None = None  # newest first; None when not read
    history_note: str = ""


@dataclass
class FlowStep:
    label: str
    state: str  # done | current | todo | failed


@dataclass
class ReleasePage:
    release_id: str
    source_commit: str | None
    made_at: str
    target: str  # aws | local | none
    stages: list[StagePage]
    assets: list[AssetChange]
    scan: ScanResults | None
    scan_note: str
    flow: list[FlowStep]
    tool_versions: dict[str, str]


def promotion_order(manifest: ReleaseManifest) -> list[str]:
    """Stages in the order a release moves through them (dev, then what dev promotes to, ...)."""
    targets = {s.promote_to for s in manifest.stages.values() if s.promote_to}
    order: list[str] = []
    for start in [name for name in manifest.stages if name not in targets]:
        name: str | None = start
        while name and name in manifest.stages and name not in order:
            order.append(name)
            name = manifest.stages[name].promote_to
    return order + [name for name in manifest.stages if name not in order]


def _read_pin(release: Path | None, file: str) -> dict[str, Any] | None:
    if release is None or not (release / file).is_file():
        return None
    data = json.loads((release / file).read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {"value": data}


def _pins(base: Path | None, head: Path) -> list[PinChange]:
    found = []
    for name, file in PIN_FILES.items():
        before, after = _read_pin(base, file), _read_pin(head, file)
        if before is not None or after is not None:
            found.append(PinChange(name, file, before, after))
    return found


class StageReader:
    """Reads what a stage holds, its history and its promotion evidence from a target (or from nothing)."""

    def __init__(self, target: Target | None) -> None:
        self.target = target

    def base(
        self, cfg: StageConfig, release_id: str, history: list[HistoryEntry], into: Path
    ) -> tuple[Path | None, str]:
        """What the release changes in the stage: what it holds now, or, once it holds this release
        (the page made in its Verify build), the release it held before."""
        import shutil

        from gitops.promotion import envrepo

        assert self.target is not None
        url = self.target.env_repo_url(cfg)
        held = envrepo.copy_head_release(url, cfg.stage, into)
        if held is None:
            return None, f"{cfg.stage} holds no release yet"
        if load_release(held).release_id != release_id:
            return held, f"what {cfg.stage} holds now"
        shutil.rmtree(held)
        previous = next((h.release_id for h in history if h.release_id and h.release_id != release_id), None)
        if previous is None:
            return None, f"nothing: {cfg.stage} held no release before this one"
        return envrepo.release_at(url, previous, into), f"release {previous[:12]}, which {cfg.stage} held before it"

    def history(self, cfg: StageConfig) -> list[HistoryEntry]:
        from gitops.promotion import envrepo

        assert self.target is not None
        return [
            HistoryEntry(d.commit, d.release_id, d.subject, d.date)
            for d in envrepo.history(self.target.env_repo_url(cfg), limit=20)
        ]

    def evidence(self, cfg: StageConfig, release_id: str, history: list[HistoryEntry] | None) -> list[EvidenceItem]:
        """What `gitops promote --from <stage>` will check for this release, as it stands now."""
        held = history is not None and any(h.release_id == release_id for h in history)
        items = [
            EvidenceItem(
                f"published to {cfg.stage}",
                OK if held else (NOT_READ if history is None else MISSING),
                "in the env repository's history"
                if held
                else ("env repository not read" if history is None else f"{cfg.stage} has never held this release"),
            )
        ]
        if self.target is None:
            reason = "no target read (--against): the stage's records were not consulted"
            items.append(EvidenceItem(f"deployed and verified in {cfg.stage}", NOT_READ, reason))
            items.append(EvidenceItem(f"approved in {cfg.stage}", NOT_READ, reason))
            return items
        if self.target.is_local:
            return items + self._local(cfg, release_id)
        return items + self._aws(cfg, release_id)

    def _local(self, cfg: StageConfig, release_id: str) -> list[EvidenceItem]:
        from gitops.promotion.state import LocalState

        assert self.target is not None and self.target.local_dir is not None
        state = LocalState(self.target.local_dir)
        record = state.verification(cfg.stage, release_id)
        verified = EvidenceItem(
            f"deployed and verified in {cfg.stage}",
            OK if record else MISSING,
            f"signed record of {record.at}" + (f" (execution {record.execution_id})" if record.execution_id else "")
            if record
            else "no verification record for this release",
        )
        approval = state.approval(cfg.stage, release_id)
        if approval is None:
            decided = EvidenceItem(f"approved in {cfg.stage}", MISSING, "not requested yet")
        elif approval.status == "waiting":
            decided = EvidenceItem(f"approved in {cfg.stage}", WAITING, f"requested {approval.requested_at}")
        else:
            by = f"{approval.status} by {approval.decided_by} at {approval.decided_at}"
            decided = EvidenceItem(
                f"approved in {cfg.stage}",
                OK if approval.status == "approved" else FAILED,
                by + (f": {approval.summary}" if approval.summary else ""),
            )
        return [verified, decided]

    def _aws(self, cfg: StageConfig, release_id: str) -> list[EvidenceItem]:
        """On AWS, the Promote action reads the execution it runs in; the page says what waits where."""
        from gitops.promotion.approval import pending_approvals

        assert self.target is not None
        where = f"CodePipeline {cfg.release_pipeline_name}"
        try:
            waiting = [p for p in pending_approvals(cfg, self.target) if p.release_id == release_id]
        except (BotoCoreError, ClientError) as exc:
            why = f"could not read {where}: {aws_error_text(exc)}"
            return [
                EvidenceItem(f"deployed and verified in {cfg.stage}", NOT_READ, why),
                EvidenceItem(f"approved in {cfg.stage}", NOT_READ, why),
            ]
        verified = EvidenceItem(
            f"deployed and verified in {cfg.stage}",
            OK if waiting else NOT_READ,
            f"the execution waiting at Approve in {where} passed Deploy and Verify"
            if waiting
            else f"read from the {where} execution by the Promote action",
        )
        approval = EvidenceItem(
            f"approved in {cfg.stage}",
            WAITING if waiting else NOT_READ,
            f"waiting in {where} (execution {waiting[0].execution_id})"
            if waiting
            else f"read from the {where} execution by the Promote action",
        )
        return [verified, approval]


def _scanned(release_dir: Path, release_id: str, scan: ScanResults | None) -> EvidenceItem:
    from gitops.scan.attestation import find_attestation, policy_sha256

    found = find_attestation(release_id, policy_sha256(release_dir))
    if found is not None:
        verdict = OK if found.passed else FAILED
        return EvidenceItem("scanned", verdict, f"this machine's signed verdict of {found.scanned_at} ({found.scope})")
    if scan is not None and scan.release_id == release_id:
        return EvidenceItem(
            "scanned",
            OK if scan.passed else FAILED,
            f"{scan.source} says {'passed' if scan.passed else 'failed'}; each stage's Deploy build scans again",
        )
    return EvidenceItem("scanned", NOT_READ, "no scan of this release here; each stage's Deploy build scans it first")


def _flow(order: list[str], stages: dict[str, StagePage], scanned: EvidenceItem, release_id: str) -> list[FlowStep]:
    done = {OK: "done", FAILED: "failed"}
    steps = [FlowStep("render", "done"), FlowStep("scan", done.get(scanned.state, "todo"))]
    for name in order:
        page = stages[name]
        held = page.held_release == release_id or any(
            h.release_id == release_id for h in (page.history or []) if h.release_id
        )
        evidence = {item.label.split(" in ")[0]: item for item in page.evidence}
        verified = evidence.get("deployed and verified")
        steps.append(FlowStep(f"deploy {name}", "done" if held else "todo"))
        steps.append(FlowStep(f"verify {name}", done.get(verified.state, "todo") if verified else "todo"))
        if page.promote_to:
            approved = evidence.get("approved")
            state = done.get(approved.state, "current" if approved.state == WAITING else "todo") if approved else "todo"
            steps.append(FlowStep("approve", state))
    first_open = next((s for s in steps if s.state == "todo"), None)
    if first_open is not None and not any(s.state in ("current", "failed") for s in steps):
        first_open.state = "current"
    return steps


def collect_page(
    release_dir: Path,
    *,
    target: Target | None,
    against: Path | None = None,
    stages: list[str] | None = None,
    scan: ScanResults | None = None,
    scan_note: str = "",
) -> ReleasePage:
    """Everything the page shows. With `against`, every stage is compared with that release and no target is read."""
    manifest = load_release(release_dir)
    order = [s for s in promotion_order(manifest) if stages is None or s in stages]
    reader = StageReader(None if against is not None else target)
    pages: dict[str, StagePage] = {}
    assets: list[AssetChange] = []
    with tempfile.TemporaryDirectory(prefix="gitops-report-") as tmp:
        for name in order:
            cfg = load_stage_config_from_release(release_dir, name)
            if reader.target is not None:
                history: list[HistoryEntry] | None = reader.history(cfg)
                base, against_text = reader.base(cfg, manifest.release_id, history or [], Path(tmp) / name)
                note = ""
            else:
                base = against
                history = None
                against_text = f"release {load_release(against).release_id[:12]} ({against})" if against else "nothing"
                note = "not read: the page was made without a target"
            log.debug("stage %s: comparing release %s with %s", name, manifest.release_id[:12], against_text)
            result = diff_releases(base, release_dir, [name])
            if not assets:
                assets = result.assets
            page = StagePage(
                name,
                cfg.account,
                cfg.region,
                cfg.promote_to,
                result.base_release,
                against_text,
                result.stages[0],
                _pins(base, release_dir),
                history=history,
                history_note=note,
            )
            if cfg.promote_to:
                page.evidence = reader.evidence(cfg, manifest.release_id, history)
            pages[name] = page
    scanned = _scanned(release_dir, manifest.release_id, scan)
    for page in pages.values():
        if page.promote_to:
            page.evidence.insert(0, scanned)
    return ReleasePage(
        release_id=manifest.release_id,
        source_commit=manifest.source_commit,
        made_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        target=("none" if reader.target is None else reader.target.kind),
        stages=[pages[n] for n in order],
        assets=assets,
        scan=scan,
        scan_note=scan_note,
        flow=_flow(order, pages, scanned, manifest.release_id),
        tool_versions=dict(manifest.tool_versions),
    )
