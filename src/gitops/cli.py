"""The `gitops` command line: one verb per step of the loop; errors caught here, printed as one line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from gitops.errors import ERROR_LINE_LIMIT, GitopsError, aws_error_text, error_lines
from gitops.log_console import LogConsole

app = typer.Typer(
    name="gitops",
    help="GitOps CI/CD for SageMaker MLOps: render, scan, publish, deploy, verify, approve, promote.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = LogConsole(stderr=True, highlight=False)  # progress and errors; log lines in a build (log_console.py)
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


def require_stage(flag: str, name: str, known: list[str], where: str = "infra/config/") -> None:
    """Refuse an unknown stage name before anything is cloned, deployed or asked of AWS."""
    if name not in known:
        raise GitopsError(
            f"{flag} {name}: no such stage (have {', '.join(known) or 'none'})",
            hint=f"give one of the stages in {where}",
        )


def release_stages(release: Path) -> list[str]:
    """The stages a release directory was rendered for (its manifest only: no hashing, no network)."""
    from gitops.release.manifest import read_manifest

    return list(read_manifest(release).stages)


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
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also DEBUG lines: the engine's and botocore's logging.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines; results and errors only.")] = False,
) -> None:
    """GitOps CI/CD for SageMaker MLOps."""
    if verbose and quiet:
        raise GitopsError("--verbose and --quiet contradict each other: give one")
    err.configure(verbose=verbose, quiet=quiet)


def emit_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


# The verb modules, in the order `gitops --help` lists them (the order of the loop).
COMMAND_MODULES = (
    "render",
    "scan",
    "diff",
    "report",
    "deploy",
    "run",
    "promotion",
    "status",
    "model",
    "rehearse",
    "local",
    "image",
    "recovery",
)


def _register_commands() -> None:
    """Each verb lives in its own module under gitops.commands and registers itself on `app`."""
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(f"gitops.commands.{name}")


def report_error(line: str, hint: str = "", detail: str = "", *, as_json: bool = False) -> None:
    """An error as the CLI shows it: one short line, the hint, then the detail (and a JSON document with --json)."""
    err.print(f"[bold red]error:[/] {escape(line)}", soft_wrap=True, level="ERROR")
    if hint:
        err.print(f"[dim]hint: {escape(hint)}[/]", soft_wrap=True, level="ERROR")
    if detail:
        err.print("[dim]detail:[/]", level="ERROR")
        for text in detail.splitlines():
            err.print(f"  {escape(text)}", soft_wrap=True, highlight=False, level="ERROR")
    if as_json:
        emit_json({"error": line, "hint": hint or None, "detail": detail or None})


def _short(text: str) -> tuple[str, str]:
    return error_lines(GitopsError(text), ERROR_LINE_LIMIT)


def command_tree():
    """The click command of `gitops` with every verb registered (render checks CI calls against it)."""
    _register_commands()
    return typer.main.get_command(app)


def main(args: list[str] | None = None) -> None:
    """Run the CLI on args (default sys.argv[1:]); every failure is one short line and a non-zero exit."""
    # typer (0.29, locked) carries its own copy of click; its usage errors are these.
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

    _register_commands()
    argv = sys.argv[1:] if args is None else list(args)
    as_json = "--json" in argv
    try:
        # standalone_mode=False: usage errors reach this edge too, instead of being boxed by typer.
        code = app(args=argv, prog_name="gitops", standalone_mode=False)
    except NoArgsIsHelpError as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "gitops"
        line, detail = _short(f"{where}: {exc.format_message()}")
        report_error(line, f"see `{where} --help`", detail, as_json=as_json)
        sys.exit(exc.exit_code)
    except ClickException as exc:
        line, detail = _short(exc.format_message())
        report_error(line, "", detail, as_json=as_json)
        sys.exit(exc.exit_code)
    except typer.Abort:
        report_error("aborted: nothing was changed", as_json=as_json)
        sys.exit(1)
    except GitopsError as exc:
        line, detail = error_lines(exc)
        report_error(line, exc.hint, detail, as_json=as_json)
        sys.exit(1)
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:
        # AWS answered with an error (no credentials, access denied, approval already decided...):
        # one line, like every other failure; anything else is a bug and keeps its traceback.
        from botocore.exceptions import BotoCoreError, ClientError

        if not isinstance(exc, BotoCoreError | ClientError):
            raise
        line, detail = _short(f"AWS: {aws_error_text(exc)}")
        report_error(
            line,
            "check the stage's credentials and region (AWS_PROFILE, or this build's role)",
            detail,
            as_json=as_json,
        )
        sys.exit(1)
    if code == 130:  # typer turns Ctrl-C into exit code 130
        err.print("[bold red]interrupted[/]: nothing was left half-written", level="ERROR")
    sys.exit(code if isinstance(code, int) else 0)
