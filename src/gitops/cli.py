"""The `gitops` command line: one verb per step of the loop; errors caught here, printed as one line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from gitops.errors import GitopsError, aws_error_text

app = typer.Typer(
    name="gitops",
    help="GitOps CI/CD for SageMaker MLOps: render, scan, publish, deploy, verify, approve, promote.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, highlight=False)
out = Console(highlight=False)

RootOpt = Annotated[Path, typer.Option("--root", help="Repository root (the source tree).")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Release directory to write.")]
ReleaseOpt = Annotated[Path, typer.Option("--release", help="Release directory to read.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")]
TargetOpt = Annotated[
    str | None,
    typer.Option("--target", help="aws (default; the standard credential chain) or local (the embedded target)."),
]
StageOpt = Annotated[str, typer.Option("--stage", help="Stage name, as in infra/config/<stage>.yaml.")]


def target_from(root: Path, kind: str | None):
    from gitops.target import resolve_target

    return resolve_target(root, kind)


def _print_version(value: bool) -> None:
    if value:
        from gitops import __version__

        out.print(f"gitops {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", is_eager=True, callback=_print_version, help="Print the engine version.")
    ] = False,
) -> None:
    """GitOps CI/CD for SageMaker MLOps."""


def emit_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


# The verb modules, in the order `gitops --help` lists them (the order of the loop).
COMMAND_MODULES = ("render", "scan", "diff", "deploy", "promotion", "status", "rehearse", "local")


def _register_commands() -> None:
    """Each verb lives in its own module under gitops.commands and registers itself on `app`."""
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(f"gitops.commands.{name}")


def main() -> None:
    _register_commands()
    try:
        app()
    except GitopsError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        if exc.hint:
            err.print(f"[dim]hint: {exc.hint}[/]", soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("[bold red]interrupted[/]: nothing was left half-written")
        sys.exit(130)
    except Exception as exc:
        # AWS answered with an error (no credentials, access denied, approval already decided...):
        # one line, like every other failure; anything else is a bug and keeps its traceback.
        from botocore.exceptions import BotoCoreError, ClientError

        if not isinstance(exc, BotoCoreError | ClientError):
            raise
        err.print(f"[bold red]error:[/] AWS: {escape(aws_error_text(exc))}", soft_wrap=True)
        err.print("[dim]hint: check the stage's credentials and region (AWS_PROFILE, or this build's role)[/]")
        sys.exit(1)
