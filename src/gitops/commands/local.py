"""`gitops local up|down`: keep the embedded target (moto server + env repos) running between commands."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer

from gitops.cli import JsonOpt, RootOpt, app, emit_json, err, out
from gitops.target import DEFAULT_LOCAL_DIR

local_app = typer.Typer(help="Start or stop the embedded target (a loopback moto server and local env repos).")
app.add_typer(local_app, name="local")


@local_app.command("up")
def up(
    root: RootOpt = Path("."),
    restore: Annotated[
        bool,
        typer.Option("--restore/--no-restore", help="Deploy what each env repository holds onto a fresh server."),
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Start the embedded target and seed the env repositories (kept until `gitops local down`).

    A fresh server knows nothing (moto keeps AWS state in memory): each stage's held release is
    deployed again from its env repository, so `status`, `verify` and `promote` see what git says.
    """
    from gitops.config import load_stages
    from gitops.local.embedded import bring_up, read_server
    from gitops.local.restore import NOT_RESTORED, restore_from_env_repos
    from gitops.target import Target

    fresh = read_server((root / DEFAULT_LOCAL_DIR).resolve()) is None
    local_dir, endpoint = bring_up(root)
    restored = []
    if fresh and restore:
        say = (lambda _msg: None) if as_json else (lambda msg: err.print(f"[dim]restore[/] {msg}"))
        restored = restore_from_env_repos(Target("local", local_dir, endpoint), load_stages(root), say)
    if as_json:
        emit_json(
            {
                "local_dir": str(local_dir),
                "endpoint_url": endpoint,
                "restored": {r.stage: r.release_id for r in restored},
            }
        )
        return
    out.print(f"embedded target up: moto at {endpoint}, env repos in {local_dir / 'repos'}")
    if any(r.release_id for r in restored):
        out.print(f"AWS state deployed again from the env repos; {NOT_RESTORED}")
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
