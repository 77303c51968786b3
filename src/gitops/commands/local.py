"""`gitops local up|down`: keep the embedded target (moto server + env repos) running between commands."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer

from gitops.cli import JsonOpt, RootOpt, app, emit_json, out
from gitops.target import DEFAULT_LOCAL_DIR

local_app = typer.Typer(help="Start or stop the embedded target (a loopback moto server and local env repos).")
app.add_typer(local_app, name="local")


@local_app.command("up")
def up(root: RootOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Start the embedded target and seed the env repositories (kept until `gitops local down`)."""
    from gitops.local.embedded import bring_up

    local_dir, endpoint = bring_up(root)
    if as_json:
        emit_json({"local_dir": str(local_dir), "endpoint_url": endpoint})
        return
    out.print(f"embedded target up: moto at {endpoint}, env repos in {local_dir / 'repos'}")
    out.print("use it from any terminal:  export GITOPS_TARGET=local")


@local_app.command("down")
def down(
    root: RootOpt = Path("."),
    purge: Annotated[bool, typer.Option("--purge", help="Also delete env repos and approvals.")] = False,
) -> None:
    """Stop the embedded target's server (and with --purge forget its repos and state)."""
    from gitops.local.embedded import stop_server

    local_dir = (root / DEFAULT_LOCAL_DIR).resolve()
    stopped = stop_server(local_dir)
    if purge:
        shutil.rmtree(local_dir, ignore_errors=True)
    out.print(
        ("stopped the embedded target" if stopped else "the embedded target was not running")
        + (" and purged its state" if purge else "")
    )
