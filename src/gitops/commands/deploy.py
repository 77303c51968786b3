"""`gitops deploy | verify --stage S`: apply a release to a stage, then prove it matches."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from gitops.cli import (
    JsonOpt,
    RootOpt,
    StageOpt,
    TargetOpt,
    app,
    emit_json,
    err,
    out,
    release_stages,
    require_stage,
    target_from,
)
from gitops.errors import GitopsError

ReleaseDirOpt = Annotated[Path, typer.Option("--release", help="Release directory (an env repo's release/).")]
STAGE_MARKER = "STAGE"  # at an env repository's root (seed_repo/, prod_repo/): the stage it belongs to


def check_stage_marker(release: Path, stage: str) -> None:
    """In an env repository checkout, act only on the stage the repository belongs to."""
    marker = release.resolve().parent / STAGE_MARKER
    if marker.is_file() and marker.read_text().strip() != stage:
        raise GitopsError(
            f"{marker}: this environment repository belongs to stage '{marker.read_text().strip()}',"
            f" not '{stage}'; refusing to act on it"
        )


def require_release_stage(stage: str, release: Path, root: Path) -> None:
    """Refuse an unknown --stage first: against the release's stages, or infra/config/ when there is no release yet."""
    from gitops.config import load_stages
    from gitops.release.manifest import MANIFEST

    if (release / MANIFEST).is_file():
        require_stage("--stage", stage, release_stages(release), f"{release}/{MANIFEST} (the stages it was made for)")
    else:
        require_stage("--stage", stage, list(load_stages(root)), "infra/config/")


@app.command()
def deploy(
    stage: StageOpt,
    release: ReleaseDirOpt = Path("release"),
    root: RootOpt = Path("."),
    target: TargetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Stage the pinned model, upload assets, deploy the stage's stacks with change sets, upsert its pipelines."""
    from gitops.deploy.apply import deploy_stage

    check_stage_marker(release, stage)
    require_release_stage(stage, release, root)
    progress = None if as_json else (lambda msg: err.print(f"[dim]deploy[/] {msg}"))
    report = deploy_stage(release, stage, target_from(root, target), progress=progress)
    from gitops.deploy.notify import notify_deploy

    notification = notify_deploy(report)  # optional: skipped, and said so, without a webhook secret
    if as_json:
        emit_json(report.to_dict() | {"notification": notification})
    else:
        err.print(f"[dim]deploy[/] {notification}")
        table = Table(title=f"deploy {stage}: release {report.release_id[:12]}", title_justify="left")
        for col in ("stack", "action", "seconds", "note"):
            table.add_column(col)
        for s in report.stacks:
            note = s.reason or s.note or (f"{len(s.dropped)} resources not on the embedded target" if s.dropped else "")
            table.add_row(s.name, s.action, f"{s.seconds:.1f}", note)
        for p in report.pipelines:
            table.add_row(f"pipeline {p.name}", p.action, "", "")
        out.print(table)
        out.print(f"model: {report.model}" + (f"; {report.model_artifact}" if report.model_artifact else ""))
        out.print(
            f"assets uploaded {len(report.assets_uploaded)}, unchanged {len(report.assets_skipped)};"
            f" {report.seconds:.1f}s"
        )
    report.raise_for_failure()


@app.command()
def verify(
    stage: StageOpt,
    release: ReleaseDirOpt = Path("release"),
    root: RootOpt = Path("."),
    target: TargetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check that what runs in the stage is exactly the release: stacks, pipeline hashes, code, endpoint."""
    from gitops.deploy.verify import NOT_CHECKED, verify_stage
    from gitops.promotion.state import LocalState

    check_stage_marker(release, stage)
    require_release_stage(stage, release, root)
    resolved = target_from(root, target)
    progress = None if as_json else (lambda msg: err.print(f"[dim]verify[/] {msg}"))
    report = verify_stage(release, stage, resolved, progress=progress)
    if as_json:
        emit_json(report.to_dict())
    else:
        table = Table(title=f"verify {stage}: release {report.release_id[:12]}", title_justify="left")
        for col in ("check", "name", "result", "detail"):
            table.add_column(col)
        for c in report.checks:
            if c.kind == NOT_CHECKED:
                continue  # summed up per stack below
            result = "skipped" if c.skipped else ("ok" if c.ok else "[red]DIFFERS[/]")
            table.add_row(c.kind, c.name, result, c.detail)
        for stack_name, items in report.not_checked.items():
            table.add_row("not checked here", stack_name, "skipped", _not_checked_summary(items))
        out.print(table)
        if report.not_checked:
            out.print(f"not checked here (not deployable on the {report.target} target): `--json` lists each resource")
    report.raise_for_failure()
    if resolved.is_local and resolved.local_dir is not None:
        # On AWS the pipeline's Verify action is the record; here the state store keeps it for promote.
        from gitops.promotion.evidence import EXECUTION_ENV

        execution = os.environ.get(EXECUTION_ENV) or None
        details = {"checks": len(report.checks), "not_checked": report.not_checked}
        LocalState(resolved.local_dir).record_verified(stage, report.release_id, details, execution_id=execution)


def _not_checked_summary(items: list[str]) -> str:
    """ "13 resources: AWS::CodeBuild::Project ×3, ..." from "LogicalId (Type)" entries."""
    types: dict[str, int] = {}
    for item in items:
        kind = item.rsplit("(", 1)[-1].rstrip(")")
        types[kind] = types.get(kind, 0) + 1
    shown = ", ".join(f"{k} ×{n}" if n > 1 else k for k, n in sorted(types.items()))
    return f"{len(items)} resources: {shown}"
