"""`gitops model propose`: turn an Approved model package into a proposed commit of the model pin."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from gitops.cli import JsonOpt, RootOpt, TargetOpt, app, emit_json, err, out, target_from
from gitops.errors import GitopsError

model_app = typer.Typer(help="The served model: propose a registry approval as a commit of models/serving.yaml.")
app.add_typer(model_app, name="model")


@model_app.command("propose")
def propose(
    package: Annotated[
        str | None,
        typer.Option("--package", help="Model package ARN (default: the newest Approved in the training stage)."),
    ] = None,
    event: Annotated[
        Path | None,
        typer.Option("--event", help="An EventBridge model-package state-change event (JSON); only Approved proposes."),
    ] = None,
    push: Annotated[str | None, typer.Option("--push", help="Push the proposal's branch to this git remote.")] = None,
    pr: Annotated[
        str | None,
        typer.Option("--pr", help="Then open the pull request: github (gh) or codecommit:<repository> (its API)."),
    ] = None,
    base: Annotated[str, typer.Option("--base", help="The branch the pull request targets.")] = "main",
    root: RootOpt = Path("."),
    target: TargetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the package (Approved, artifact sha256, metrics vs every stage) and commit the pin on a new branch."""
    if pr is not None and (push is None or not (pr == "github" or pr.startswith("codecommit:"))):
        raise GitopsError(f"--pr {pr}: give github or codecommit:<repository>, with --push <remote>")
    from gitops.model.propose import propose_model

    document = None
    if event is not None:
        try:
            document = json.loads(event.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise GitopsError(f"--event {event}: not a readable JSON event ({exc})") from exc
        if not isinstance(document, dict):
            raise GitopsError(f"--event {event}: expected a JSON object (an EventBridge event)")
    progress = None if as_json else (lambda msg: err.print(f"[dim]model[/] {msg}"))
    resolved = target_from(root, target)
    proposal = propose_model(root, resolved, package_arn=package, event=document, progress=progress)
    opened = None
    if proposal.proposed and push is not None:
        from gitops.model import pull_request

        assert proposal.branch is not None
        pull_request.push_branch(root, push, proposal.branch)
        if pr == "github":
            opened = pull_request.open_github_pr(root, proposal, base)
        elif pr is not None:
            from gitops.config import load_stages
            from gitops.model.propose import training_stage

            config = training_stage(load_stages(root))
            client = resolved.client(config, "codecommit")
            opened = pull_request.open_codecommit_pr(client, pr.split(":", 1)[1], proposal, base)
    if as_json:
        emit_json(proposal.to_dict() | {"pull_request": opened})
        return
    if not proposal.proposed:
        out.print(proposal.reason)
        return
    out.print(f"proposed on branch {proposal.branch} (commit {proposal.commit and proposal.commit[:12]}):")
    out.print(proposal.description, markup=False)
    if opened:
        out.print(f"pull request: {opened}")


@model_app.command("show")
def show(
    release: Annotated[Path, typer.Option("--release", help="The release whose model to show.")] = Path("release"),
    against: Annotated[
        Path | None, typer.Option("--against", help="Show the change from this release's model.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """One line naming the release's model (package, sha256, AUC), or its change against another release."""
    from gitops.model.change import release_model_change

    change = release_model_change(against, release)
    if as_json:
        emit_json(change.to_dict())
        return
    if against is None:
        out.print(change.after, markup=False)
        return
    out.print(change.headline() + "".join(f"; {line}" for line in change.lines), markup=False)
