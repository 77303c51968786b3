"""`gitops status`: every stage's current release, its last pipeline execution, and waiting approvals."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from gitops.cli import JsonOpt, RootOpt, TargetOpt, app, emit_json, out, target_from


def collect_status(root: Path, target_kind: str | None) -> dict:
    from gitops.config import load_stages
    from gitops.model.change import held_model
    from gitops.promotion import envrepo
    from gitops.promotion.approval import pending_approvals
    from gitops.promotion.state import LocalState

    stages = load_stages(root)
    target = target_from(root, target_kind)
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
        rows.append(
            {
                "stage": name,
                "account": cfg.account,
                "region": cfg.region,
                "release_id": held.release_id if held else None,
                "commit": head,
                "last_execution": execution,
                "verified": verified,
                "waiting_approvals": waiting,
                "model": held_model(target, cfg) if held else "no release",
            }
        )
    return {"target": target.kind, "stages": rows}


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
    for row in data["stages"]:
        not_checked = (row["verified"] or {}).get("not_checked") or {}
        if not_checked:
            counts = ", ".join(f"{stack} {len(items)}" for stack, items in sorted(not_checked.items()))
            out.print(
                f"{row['stage']}: verified {row['verified']['at']};"
                f" not checked here (not on the embedded target): {counts}"
            )
    for row in data["stages"]:
        for w in row["waiting_approvals"]:
            out.print(f"\n[bold]waiting in {row['stage']}:[/] release {w['release_id']}")
            if w["diff_summary"]:
                out.print(w["diff_summary"])
            out.print(f"approve with: gitops approve --release {w['release_id'][:12]}")
