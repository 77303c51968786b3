"""`gitops backup|restore|drill`: recovery after an account wipe (engine in gitops.recovery)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from gitops.cli import JsonOpt, RootOpt, StageOpt, TargetOpt, app, emit_json, err, out, require_stage, target_from

DEFAULT_BACKUPS = Path(".gitops") / "backups"
ToOpt = Annotated[
    str | None,
    typer.Option(
        "--to",
        help="Directory, or s3://bucket/prefix of the backup account's Object Lock bucket (default .gitops/backups).",
    ),
]


def _context(root: Path, stage: str, target_kind: str | None, online_ids: list[str] | None = None):
    from gitops.config import load_stages
    from gitops.recovery.inventory import StageContext

    stages = load_stages(root)
    require_stage("--stage", stage, list(stages))
    return StageContext(stages[stage], target_from(root, target_kind), online_record_ids=online_ids or [])


def _say(as_json: bool):
    def say(msg: str) -> None:
        if not as_json:
            err.print(msg, style="dim", markup=False, soft_wrap=True)

    return say


@app.command()
def backup(
    stage: StageOpt,
    to: ToOpt = None,
    online_record_id: Annotated[
        list[str] | None,
        typer.Option("--online-record-id", help="A Feature Store record id whose online record to keep."),
    ] = None,
    root: RootOpt = Path("."),
    target: TargetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Back up what the release cannot recreate (inventory in the README) into a new set; its manifest comes last."""
    from gitops.machine import scratch
    from gitops.recovery.backup import backup_stage
    from gitops.recovery.destination import backup_account_s3, upload_set

    ctx = _context(root, stage, target, online_record_id)
    with scratch("backup") as staging:
        to_s3 = bool(to and to.startswith("s3://"))
        result = backup_stage(ctx, staging if to_s3 else Path(to or root / DEFAULT_BACKUPS), progress=_say(as_json))
        where = str(result.path)
        if to and to_s3:
            _say(as_json)(f"uploading to {to} (Object Lock, manifest last)")
            where = upload_set(backup_account_s3(ctx.target.endpoint_url, ctx.stage.region), result.path, to)
    if as_json:
        emit_json({"backup": where, "manifest": result.manifest.model_dump(mode="json")})
        return
    table = Table(title=f"backup of {stage}: release {result.manifest.release_id[:12]}", title_justify="left")
    for col in ("kind", "status", "objects", "reason"):
        table.add_column(col)
    for name, summary in result.manifest.kinds.items():
        table.add_row(name, summary.status, str(summary.count), summary.reason)
    out.print(table)
    size = sum(e.size for e in result.manifest.entries)
    out.print(f"{where}  ({len(result.manifest.entries)} objects, {size} bytes, {result.manifest.seconds:.1f} s)")


@app.command()
def restore(
    stage: StageOpt,
    from_: Annotated[
        str, typer.Option("--from", help="The backup set: a directory holding MANIFEST.json, or its s3:// URL.")
    ],
    root: RootOpt = Path("."),
    target: TargetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check every checksum, deploy the recorded release, put back each kind, verify and compare; idempotent."""
    from gitops.machine import scratch
    from gitops.recovery.destination import backup_account_s3, download_set
    from gitops.recovery.restore import restore_stage

    ctx = _context(root, stage, target)
    with scratch("restore-set") as staging:
        backup_dir = Path(from_)
        if from_.startswith("s3://"):
            backup_dir = download_set(backup_account_s3(ctx.target.endpoint_url, ctx.stage.region), from_, staging)
        report = restore_stage(ctx, backup_dir, progress=_say(as_json))
    if as_json:
        emit_json(report.to_dict())
    else:
        table = Table(title=f"restore of {stage}: release {report.release_id[:12]}", title_justify="left")
        for col in ("kind", "changed", "unchanged", "not restored"):
            table.add_column(col)
        for k in report.kinds:
            table.add_row(k.kind, str(len(k.changed)), str(k.unchanged), "; ".join(k.not_restored))
        out.print(table)
        for d in report.differences:
            out.print(f"[red]differs[/] {d.kind} {d.name}: {d.detail}")
        for p in report.verify_problems:
            out.print(f"[red]verify[/] {p}")
        out.print(
            f"env repo head holds {report.env_head_release_id or 'no release'};"
            f" {len(report.changes)} changes; {report.seconds:.1f} s"
        )
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def drill(
    release: Annotated[Path, typer.Option("--release", help="A rendered and scanned release of dev and prod.")] = Path(
        "release"
    ),
    work: Annotated[Path, typer.Option("--work", help="Where the drill's own target and backups live.")] = Path(
        ".gitops"
    )
    / "drill",
    root: RootOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """On its own embedded target: deploy dev and prod, write data, back up, WIPE, restore, verify; RPO and RTO."""
    from gitops.recovery.drill import DrillFailed, run_drill
    from gitops.recovery.inventory import LOST_BY_DESIGN

    report = run_drill(root, release, (root / work).resolve(), progress=_say(as_json))
    if as_json:
        emit_json(report.to_dict())
    else:
        table = Table(title=f"drill of release {report.release_id[:12]}", title_justify="left")
        for col in ("stage", "kind", "backed up", "restored", "already there", "came back"):
            table.add_column(col)
        for s in report.stages:
            for k in s.restore.kinds:
                lost = [d for d in s.restore.differences if d.kind == k.kind]
                table.add_row(
                    s.stage,
                    k.kind,
                    str(s.backed_up.get(k.kind, 0)),
                    str(len(k.changed)),
                    str(k.unchanged),
                    "yes" if not lost else f"[red]no: {len(lost)} lost[/]",
                )
            for kind, why in s.skipped.items():
                table.add_row(s.stage, kind, "0", "-", "-", f"not backed up: {why}")
        out.print(table)
        for s in report.stages:
            written = ", ".join(f"{v} {k}" for k, v in s.written.items())
            out.print(
                f"{s.stage}: wrote {written}; right after the wipe {s.wiped} of its {sum(s.backed_up.values())}"
                f" backed-up objects were gone or different;"
                f" verify: {'ok' if not s.restore.verify_problems else 'FAILED'}"
            )
        for s in report.stages:
            for k in s.restore.kinds:
                for item in k.not_restored:
                    out.print(f"{s.stage}: not restored: {item}")
        for line in report.lost:
            out.print(f"[red]did not come back[/] {line}")
        out.print("lost by design: " + "; ".join(x.what for x in LOST_BY_DESIGN))
        out.print(
            f"RPO: {report.rpo_items} items written after the backup were lost"
            f" (backup-to-wipe window {report.rpo_seconds:.1f} s)"
        )
        out.print(f"RTO: {report.rto_seconds:.1f} s from the wipe to every stage restored and verified")
    if not report.ok:
        raise DrillFailed(
            f"the drill lost data: {'; '.join(report.lost[:3]) or f'{report.rpo_items} items after the backup'}"
        )
