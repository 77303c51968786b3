"""`gitops diff`: what a release changes against another release or a stage's current one."""

from __future__ import annotations

import json
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from gitops.cli import JsonOpt, RootOpt, TargetOpt, app, err, target_from
from gitops.errors import GitopsError
from gitops.files import atomic_write


class DiffFormat(StrEnum):
    text = "text"
    markdown = "markdown"
    json = "json"


def held_release_or_none(stage, target, into: Path) -> Path | None:
    """A copy of the release the stage's env repository holds now; None for a stage holding none yet."""
    from gitops.promotion import envrepo

    return envrepo.copy_head_release(target.env_repo_url(stage), stage.stage, into)


def _stage_config(name: str, release: Path | None, root: Path):
    """The stage's settings: as rendered into the release when it has them, else from the source tree."""
    from gitops.config import load_stages
    from gitops.release.manifest import load_stage_config_from_release, read_manifest

    if release is not None and name in read_manifest(release).stages:
        return load_stage_config_from_release(release, name)
    stages = load_stages(root)
    if name not in stages:
        raise GitopsError(f"--stage {name}: no such stage (have {', '.join(stages)})")
    return stages[name]


@app.command()
def diff(
    release: Annotated[
        Path | None, typer.Option("--release", help="The release to show (default: release, or --from's).")
    ] = None,
    against: Annotated[Path | None, typer.Option("--against", help="Release directory to compare with.")] = None,
    stage: Annotated[
        str | None, typer.Option("--stage", help="Compare with the release this stage's env repository holds now.")
    ] = None,
    from_stage: Annotated[
        str | None,
        typer.Option("--from", help="Show the release this stage holds now (with --stage: the promotion's change)."),
    ] = None,
    fmt: Annotated[DiffFormat, typer.Option("--format", help="text, markdown (PR comments) or json.")] = (
        DiffFormat.text
    ),
    output: Annotated[
        Path | None, typer.Option("--output", help="Write the diff to this file instead of the terminal.")
    ] = None,
    root: RootOpt = Path("."),
    target: TargetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Templates (resources, replacements), pipelines (steps, parameters) and assets a release changes."""
    from gitops.release.diff import diff_releases
    from gitops.release.manifest import load_release

    if against is not None and stage is not None:
        raise GitopsError("--against and --stage both name what to compare with: give one")
    if release is not None and from_stage is not None:
        raise GitopsError("--release and --from both name the release to show: give one")
    fmt = DiffFormat.json if as_json else fmt
    with tempfile.TemporaryDirectory(prefix="gitops-diff-") as tmp:
        if from_stage is None:
            head = release or Path("release")
            load_release(head)  # a missing or broken release is named before any repository is read
        # Stage names too, before any repository is read (with --from, --stage's settings come later from its release).
        for name in (from_stage, stage):
            if name is not None:
                _stage_config(name, None if from_stage else head, root)
        resolved = target_from(root, target) if (stage or from_stage) else None
        if from_stage is not None:
            held = held_release_or_none(_stage_config(from_stage, None, root), resolved, Path(tmp) / "head")
            if held is None:
                raise GitopsError(f"--from {from_stage}: the stage holds no release yet")
            head = held
        label = None
        base = against
        if stage is not None:
            base = held_release_or_none(_stage_config(stage, head, root), resolved, Path(tmp) / "base")
            label = f"{stage}'s current release" if base else f"{stage} holds no release yet"
        elif against is not None:
            label = str(against)
        result = diff_releases(base, head)
    result.against = label
    if fmt is DiffFormat.json:
        text = json.dumps(result.to_dict(), indent=2, sort_keys=True) + "\n"
    elif fmt is DiffFormat.markdown:
        text = result.to_markdown()
    else:
        text = result.to_text() + "\n"
    if output is not None:
        atomic_write(output, text)
        err.print(f"[dim]diff[/] wrote {output} ({'no changes' if result.empty else 'changes'})")
        return
    typer.echo(text, nl=False)
