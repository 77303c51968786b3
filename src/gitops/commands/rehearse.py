"""`gitops rehearse`: the README's main job, the whole dev-to-prod loop on this machine."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from gitops.cli import JsonOpt, OutOpt, RootOpt, app, emit_json, err, out


@app.command()
def rehearse(
    approve: Annotated[bool, typer.Option("--approve", help="Approve at the gate without asking.")] = False,
    root: RootOpt = Path("."),
    out_dir: OutOpt = Path("release"),
    keep_running: Annotated[
        bool, typer.Option("--keep-running", help="Leave the embedded target up afterwards (`gitops local down`).")
    ] = False,
    model: Annotated[
        bool,
        typer.Option(
            "--model", help="Then the model's path: registered, approved, proposed as a pin, deployed, promoted."
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Render, scan, publish to dev, deploy+verify dev, the approval click, promote, deploy+verify prod."""
    from gitops.local.rehearsal import rehearse_locally

    def log(msg: str) -> None:
        if not as_json:
            err.print(msg, style="dim", markup=False, soft_wrap=True)

    def say(msg: str) -> None:
        if not as_json:
            err.print(f"[bold]rehearse[/] {msg}")

    def confirm(question: str) -> bool:
        return typer.confirm(question, default=False)

    try:
        result = rehearse_locally(
            root,
            out_dir,
            approve=approve,
            keep_running=keep_running,
            say=say,
            log=log,
            show=err.print,
            confirm=confirm if sys.stdin.isatty() else None,
            model=model,
        )
    except KeyboardInterrupt:
        err.print(
            "[bold red]interrupted[/]: env repositories move only by atomic pushes; see `gitops status`", level="ERROR"
        )
        raise typer.Exit(130) from None
    if as_json:
        emit_json(
            {
                "release_id": result.release_id,
                "seconds": result.seconds,
                "already_promoted": result.already_promoted,
                "final_releases": result.final_releases,
                "steps": [s.__dict__ for s in result.steps],
                "model": result.model.__dict__ if result.model else None,
            }
        )
        return
    table = Table(title=f"rehearsal of release {result.release_id[:12]}", title_justify="left")
    for col in ("stage", "step", "status", "seconds"):
        table.add_column(col, justify="right" if col == "seconds" else "left")
    for s in result.steps:
        table.add_row(s.stage, s.step, s.status, f"{s.seconds:.1f}")
    table.add_row("", "total", "", f"{result.seconds:.1f}")
    out.print(table)
    for stage, rid in result.final_releases.items():
        out.print(f"{stage:>6}: {rid or '(none)'}")
    if result.already_promoted:
        out.print("nothing to do: the last stage already holds this release")
    if result.model is not None:
        loop = Table(title=f"the model's path: {result.model.package_arn}", title_justify="left")
        for col in ("stage", "step", "status", "seconds"):
            loop.add_column(col, justify="right" if col == "seconds" else "left")
        for step, seconds in result.model.timings.items():
            loop.add_row("-", step, "Succeeded", f"{seconds:.1f}")
        for stage, step, status, seconds in result.model.loop:
            loop.add_row(stage, f"  {step}", status, f"{seconds:.1f}")
        out.print(loop)
        for line in result.model.lines:
            out.print(line, markup=False)
        for stage, sha in result.model.served.items():
            out.print(f"{stage:>6} serves sha256 {sha}")
