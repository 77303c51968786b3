"""`gitops status`: every stage's current release, its last pipeline execution, and waiting approvals."""

from __future__ import annotations

import os
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from gitops.cli import JsonOpt, RootOpt, TargetOpt, app, emit_json, out, target_from
from gitops.deploy.pipeline_runs import execution_summary
from gitops.target import DEFAULT_LOCAL_DIR, Target

STOPPED_NOTE = (
    "the embedded target is stopped: the env repos, executions and approvals below are read from {dir};"
    " its AWS resources lived in the server's memory: `gitops local up` deploys them again from the env repos"
)


def status_target(root: Path, target_kind: str | None) -> tuple[Target, str | None]:
    """The target to report on; a stopped embedded target is still read from its files (what git and state hold)."""
    from gitops.target import LOCAL_DIR_ENV, TARGET_ENV, TargetError

    try:
        return target_from(root, target_kind), None
    except TargetError:
        if (target_kind or os.environ.get(TARGET_ENV)) != "local":
            raise
        local_dir = Path(os.environ.get(LOCAL_DIR_ENV) or root / DEFAULT_LOCAL_DIR).resolve()
        if not (local_dir / "repos").is_dir():
            raise
        return Target("local", local_dir), STOPPED_NOTE.format(dir=local_dir)


def collect_status(root: Path, target_kind: str | None) -> dict:
    from gitops.config import load_stages
    from gitops.deploy.pipeline_runs import stage_pipeline_executions
    from gitops.model.change import held_model
    from gitops.promotion import envrepo
    from gitops.promotion.approval import pending_approvals
    from gitops.promotion.state import LocalState
    from gitops.release.pipelines import discover_pipelines
    from gitops.report.publish import page_location

    stages = load_stages(root)
    target, note = status_target(root, target_kind)
    pipelines = discover_pipelines(root)
    rows = []
    for name, cfg in stages.items():
        head, held = envrepo.current_release(target.env_repo_url(cfg))
        if target.is_local:
            assert target.local_dir is not None
            local = LocalState(target.local_dir)
            runs = local.executions(name)
            last = runs[-1] if runs else None
            execution = {"id": last["execution_id"], "status": last["status"]} if last else None
            record = local.verification(name, held.release_id) if held else None
            verified = {"at": record.at, "not_checked": record.details.get("not_checked", {})} if record else None
        else:
            client = target.client(cfg, "codepipeline")
            summaries = client.list_pipeline_executions(pipelineName=cfg.release_pipeline_name, maxResults=1)
            last = (summaries.get("pipelineExecutionSummaries") or [None])[0]
            execution = {"id": last["pipelineExecutionId"], "status": last["status"]} if last else None
            verified = None  # on AWS the pipeline's Verify action is the record
        waiting = [
            {"release_id": p.release_id, "requested_at": p.requested_at, "diff_summary": p.diff_summary}
            for p in (pending_approvals(cfg, target) if cfg.promote_to else [])
        ]
        page = page_location(cfg, held.release_id) if held else None
        rows.append(
            {
                "stage": name,
                "release_page": {"s3": page.s3_uri, "console": page.console_url} if page else None,
                "account": cfg.account,
                "region": cfg.region,
                "release_id": held.release_id if held else None,
                "commit": head,
                "last_execution": execution,
                "verified": verified,
                "waiting_approvals": waiting,
                "pipeline_executions": stage_pipeline_executions(target, cfg, pipelines),
                "model": held_model(target, cfg) if held else "no release",
            }
        )
    return {"target": target.kind, "note": note, "stages": rows}


@app.command()
def status(root: RootOpt = Path("."), target: TargetOpt = None, as_json: JsonOpt = False) -> None:
    """Stages, the release each environment holds, last executions, pending approvals."""
    data = collect_status(root, target)
    if as_json:
        emit_json(data)
        return
    table = Table(title=f"target: {data['target']}", title_justify="left")
    for col in ("stage", "account / region", "release", "env commit", "last execution", "waiting approval", "model"):
        table.add_column(col)
    for row in data["stages"]:
        ex = row["last_execution"]
        waiting = ", ".join(w["release_id"][:12] for w in row["waiting_approvals"]) or "-"
        table.add_row(
            row["stage"],
            f"{row['account']} / {row['region']}",
            row["release_id"][:12] if row["release_id"] else "(none)",
            row["commit"][:10],
            f"{ex['status']} ({ex['id'][:8]})" if ex else "-",
            waiting,
            row["model"],
        )
    out.print(table)
    if data["note"]:
        out.print(data["note"], markup=False)
    for row in data["stages"]:
        page = row["release_page"]
        if page:
            # The stage's Verify build uploads it; `gitops report` makes it here, from any checkout.
            where = page["console"] if data["target"] == "aws" else page["s3"]
            out.print(
                f"{row['stage']}: release page {where} (or: gitops report --stage {row['stage']})",
                markup=False,
                soft_wrap=True,
            )
    for row in data["stages"]:
        not_checked = (row["verified"] or {}).get("not_checked") or {}
        if not_checked:
            counts = ", ".join(f"{stack} {len(items)}" for stack, items in sorted(not_checked.items()))
            out.print(
                f"{row['stage']}: verified {row['verified']['at']};"
                f" not checked here (not on the embedded target): {counts}"
            )
    for row in data["stages"]:
        for execution in row["pipeline_executions"]:
            out.print(f"{row['stage']}: {escape(execution_summary(execution))}", soft_wrap=True)
    for row in data["stages"]:
        for w in row["waiting_approvals"]:
            out.print(f"\n[bold]waiting in {row['stage']}:[/] release {w['release_id']}")
            if w["diff_summary"]:
                out.print(w["diff_summary"])
            out.print(f"approve with: gitops approve --release {w['release_id'][:12]}")
