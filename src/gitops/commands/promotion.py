"""`gitops publish | promote | approve | reject | rollback`: moving releases between env repositories."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from gitops.cli import (
    JsonOpt,
    RootOpt,
    StageOpt,
    TargetOpt,
    app,
    emit_json,
    out,
    release_stages,
    require_stage,
    target_from,
)
from gitops.errors import GitopsError
from gitops.machine import scratch


def _move_report(result, verb: str, as_json: bool) -> None:
    if as_json:
        emit_json(
            {
                "verb": verb,
                "stage": result.stage,
                "release_id": result.release_id,
                "commit": result.commit,
                "changed": result.changed,
                "previous_release_id": result.previous_release_id,
                "superseded_by": result.superseded_by,
            }
        )
        return
    if result.changed:
        prev = result.previous_release_id[:12] if result.previous_release_id else "none"
        out.print(
            f"{verb}: {result.stage} now holds release {result.release_id[:12]} (was {prev}),"
            f" commit {result.commit[:10]}"
        )
    else:
        out.print(f"{verb}: {result.stage} already holds release {result.release_id[:12]}; nothing to do")
    newer = result.superseded_by
    if newer:
        out.print(
            f"{verb}: note: the source stage has since moved on to release {newer[:12]}; it is not promoted until"
            " it is verified and approved there"
        )


@app.command()
def publish(
    to: Annotated[str, typer.Option("--to", help="The stage to publish to (the first stage, e.g. dev).")],
    release: Annotated[Path, typer.Option("--release", help="Release directory.")] = Path("release"),
    root: RootOpt = Path("."),
    target: TargetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Commit a scanned release into a stage's env repository and push (atomic, idempotent)."""
    from gitops.promotion.promote import first_stage, publish_release
    from gitops.release.manifest import load_release

    load_release(release)
    stages = _stages_in(release)
    first = first_stage(stages)
    if to != first.stage:
        raise GitopsError(
            f"--to {to}: releases are published only to the first stage ({first.stage});"
            f" later stages receive them through `gitops promote`"
        )
    _move_report(publish_release(release, to, target_from(root, target)), "publish", as_json)


def _stages_in(release: Path):
    from gitops.release.manifest import load_stage_config_from_release, read_manifest

    manifest = read_manifest(release)
    return {name: load_stage_config_from_release(release, name) for name in manifest.stages}


@app.command()
def promote(
    from_stage: Annotated[str, typer.Option("--from", help="Stage the release was verified and approved in.")],
    to_stage: Annotated[str, typer.Option("--to", help="Stage to promote into.")],
    release: Annotated[
        Path | None, typer.Option("--release", help="Release directory (default: what --from holds now).")
    ] = None,
    root: RootOpt = Path("."),
    target: TargetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Copy an approved, verified, scanned release byte for byte into the next stage's env repository."""
    from gitops.config import load_stages
    from gitops.promotion.evidence import evidence_for
    from gitops.promotion.promote import held_release, promote_release
    from gitops.release.manifest import load_release

    # Arguments first: nothing is cloned for a stage that does not exist or is not the next one.
    if release is None:
        stages = load_stages(root)
        known, where = list(stages), "infra/config/"
    else:
        stages, known, where = {}, release_stages(release), str(release)
    require_stage("--from", from_stage, known, where)
    require_stage("--to", to_stage, known, where)
    if stages and stages[from_stage].promote_to != to_stage:
        raise GitopsError(
            f"--to {to_stage}: stage {from_stage} promotes to {stages[from_stage].promote_to or 'nothing'},"
            f" not to {to_stage}"
        )
    resolved = target_from(root, target)
    with scratch("promote") as tmp:
        if release is None:
            release = held_release(stages[from_stage], resolved, tmp / "release")
        load_release(release)
        evidence = evidence_for(resolved)
        result = promote_release(release, from_stage, to_stage, resolved, evidence)
    _move_report(result, "promote", as_json)


def _decide(approved: bool, stage: str | None, release: str | None, summary: str | None, root: Path, target) -> None:
    from gitops.config import load_stages
    from gitops.promotion.approval import decide, pending_approvals
    from gitops.promotion.promote import first_stage

    stages = load_stages(root)
    cfg = stages[stage] if stage in stages else None
    if stage and cfg is None:
        raise GitopsError(f"--stage {stage}: no such stage (have {', '.join(stages)})")
    cfg = cfg or first_stage(stages)
    resolved = target_from(root, target)
    if release is None and sys.stdin.isatty():
        waiting = pending_approvals(cfg, resolved)
        if len(waiting) == 1:
            shown = waiting[0]
            if shown.diff_summary:
                out.print(shown.diff_summary)
            verb = "Approve" if approved else "Reject"
            if not typer.confirm(f"{verb} release {shown.release_id} in {cfg.stage}?", default=False):
                raise typer.Exit(1)
            release = shown.release_id
    chosen = decide(cfg, resolved, approved=approved, release_prefix=release, summary=summary)
    word = "approved" if approved else "rejected"
    out.print(f"{word}: release {chosen.release_id[:12]} in stage {cfg.stage}" + (f" ({summary})" if summary else ""))


ApproveStage = Annotated[str | None, typer.Option("--stage", help="Stage whose gate to decide (default: the first).")]
ApproveRelease = Annotated[
    str | None, typer.Option("--release", help="The release id shown at the gate (prefix of 7+ characters).")
]
Summary = Annotated[str | None, typer.Option("--summary", help="Why; recorded with the decision.")]


@app.command()
def approve(
    stage: ApproveStage = None,
    release: ApproveRelease = None,
    summary: Summary = None,
    root: RootOpt = Path("."),
    target: TargetOpt = None,
) -> None:
    """The approval click: let exactly this release id be promoted onwards."""
    _decide(True, stage, release, summary, root, target)


@app.command()
def reject(
    stage: ApproveStage = None,
    release: ApproveRelease = None,
    summary: Summary = None,
    root: RootOpt = Path("."),
    target: TargetOpt = None,
) -> None:
    """Refuse the waiting release: its pipeline stops before Promote."""
    _decide(False, stage, release, summary, root, target)


@app.command()
def rollback(
    stage: StageOpt,
    to: Annotated[str, typer.Option("--to", help="Release id (or 7+ character prefix) from the stage's history.")],
    root: RootOpt = Path("."),
    target: TargetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Put an earlier release of a stage back, as a new commit of its env repository."""
    from gitops.config import load_stages
    from gitops.promotion.promote import rollback_stage

    stages = load_stages(root)
    if stage not in stages:
        raise GitopsError(f"--stage {stage}: no such stage (have {', '.join(stages)})")
    if len(to) < 7:
        raise GitopsError(f"--to {to}: give at least 7 characters of the release id")
    _move_report(rollback_stage(stages[stage], to, target_from(root, target)), "rollback", as_json)
