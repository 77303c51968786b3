"""`gitops render`: print what was rendered (stages, stacks, resources, pipelines, steps, release id)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from gitops.cli import JsonOpt, OutOpt, RootOpt, app, emit_json, err, out


@app.command()
def render(
    root: RootOpt = Path("."),
    out_dir: OutOpt = Path("release"),
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Rebuild every part from scratch.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Synthesize all stacks and build all pipeline definitions into one release directory."""
    from gitops.release.render import render_release

    progress = None if as_json else (lambda msg: err.print(f"[dim]render[/] {msg}"))
    result = render_release(root, out_dir, use_cache=not no_cache, progress=progress)
    m = result.manifest
    if as_json:
        emit_json(
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
