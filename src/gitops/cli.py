"""The `gitops` command line: one verb per step of the loop; errors caught here, printed as one line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from gitops.errors import GitopsError

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
ReleaseOpt = Annotated[Path, typer.Option("--out", "-o", help="Release directory to write.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")]


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the engine version and exit.")] = False,
) -> None:
    if version:
        from gitops import __version__

        out.print(f"gitops {__version__}")
        raise typer.Exit()


def _emit_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


@app.command()
def render(
    root: RootOpt = Path("."),
    out_dir: ReleaseOpt = Path("release"),
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Rebuild every part from scratch.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Synthesize all stacks and build all pipeline definitions into one release directory."""
    from gitops.render import render_release

    progress = None if as_json else (lambda msg: err.print(f"[dim]render[/] {msg}"))
    result = render_release(root, out_dir, use_cache=not no_cache, progress=progress)
    m = result.manifest
    if as_json:
        _emit_json(
            {
                "release_id": m.release_id,
                "out": str(result.out),
                "seconds": result.seconds,
                "timings": result.timings,
                "cached": result.cached,
                "unchanged": result.unchanged,
                "stages": m.model_dump(mode="json")["stages"],
                "files": len(m.files),
            }
        )
        return
    table = Table(title=f"release {m.short_id}", title_justify="left")
    for col in ("stage", "account / region", "stacks", "resources", "pipelines", "steps"):
        table.add_column(col, justify="right" if col in ("resources", "steps") else "left")
    for name, stage in m.stages.items():
        table.add_row(
            name,
            f"{stage.account} / {stage.region}",
            ", ".join(stage.stacks),
            str(sum(s.resources for s in stage.stacks.values())),
            ", ".join(stage.pipelines),
            str(sum(len(p.steps) for p in stage.pipelines.values())),
        )
    out.print(table)
    state = "unchanged (already current)" if result.unchanged else "written"
    out.print(f"release id  {m.release_id}")
    out.print(f"{state}: {result.out}  ({len(m.files)} files, {result.seconds:.1f}s)")


def main() -> None:
    try:
        app()
    except GitopsError as exc:
        err.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
        if exc.hint:
            err.print(f"[dim]hint: {exc.hint}[/]", soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("[bold red]interrupted[/]: nothing was left half-written")
        sys.exit(130)


if __name__ == "__main__":
    main()
