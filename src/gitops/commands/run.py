"""`gitops run --stage S --pipeline P`: start a pipeline execution (AWS, or the local executor); report each step."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from gitops.cli import JsonOpt, RootOpt, StageOpt, TargetOpt, app, emit_json, err, out, require_stage, target_from
from gitops.errors import GitopsError


def parse_parameters(values: list[str]) -> dict[str, str]:
    """--param Name=Value, each once."""
    parsed: dict[str, str] = {}
    for value in values:
        name, sep, given = value.partition("=")
        if not sep or not name.strip():
            raise GitopsError(f"--param {value!r}: expected Name=Value", hint="e.g. --param AucThreshold=0.8")
        if name in parsed:
            raise GitopsError(f"--param {name}: given twice")
        parsed[name.strip()] = given
    return parsed


def steps_table(record) -> Table:
    table = Table(
        title=f"{record.pipeline_name} {record.execution_id}: {record.status}"
        + (f" in {record.seconds:.1f}s" if record.seconds is not None else ""),
        title_justify="left",
    )
    for column in ("step", "type", "status", "seconds", "failure reason"):
        table.add_column(column)
    for step in record.steps:
        seconds = f"{step.seconds:.2f}" if step.seconds is not None else "-"
        table.add_row(step.name, step.type, step.status, seconds, step.failure_reason or "")
    return table


@app.command("run")
def run_pipeline(
    stage: StageOpt,
    pipeline: Annotated[str, typer.Option("--pipeline", help="A pipeline of pipeline_defs/ (e.g. training).")],
    param: Annotated[
        list[str] | None, typer.Option("--param", help="Name=Value for a pipeline parameter; repeatable.")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="On AWS: wait for the execution to end.")] = True,
    release: Annotated[
        Path, typer.Option("--release", help="Local: the release whose templates declare the feature groups.")
    ] = Path("release"),
    root: RootOpt = Path("."),
    target: TargetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Start a SageMaker pipeline execution (on AWS, or by the local executor) and report each step."""
    from gitops.config import load_stages
    from gitops.release.pipelines import discover_pipelines

    stages = load_stages(root)
    require_stage("--stage", stage, list(stages))
    known = discover_pipelines(root)
    if pipeline not in known:
        raise GitopsError(
            f"--pipeline {pipeline}: no such pipeline (have {', '.join(known) or 'none'})",
            hint="give one of the packages under pipeline_defs/",
        )
    parameters = parse_parameters(param or [])
    where = target_from(root, target)
    cfg = stages[stage]
    progress = (lambda line: None) if as_json else (lambda line: err.print(f"[dim]run[/] {line}"))
    if where.is_local:
        from gitops.local.executor.embedded import run_deployed_pipeline

        record = run_deployed_pipeline(
            where, cfg, pipeline, parameters=parameters, release_dir=release if release.is_dir() else None, log=progress
        )
    else:
        from gitops.deploy.pipeline_runs import describe_execution, start_execution, wait_for_execution

        sm = where.client(cfg, "sagemaker")
        arn = start_execution(sm, cfg.pipeline_name(pipeline), parameters)
        progress(f"started {arn}")
        record = wait_for_execution(sm, arn, stage, log=progress) if wait else describe_execution(sm, arn, stage)
    if as_json:
        emit_json(record.to_json())
    else:
        out.print(steps_table(record))
        for step in record.steps:
            if step.status == "Failed" and step.metadata.get("log_tail"):
                err.print(f"[bold]last lines of {step.name}'s log[/] ({step.metadata.get('log', 'not kept')}):")
                err.print(escape(step.metadata["log_tail"]), soft_wrap=True, highlight=False)
    if record.status == "Failed" or (wait and record.status not in ("Succeeded", "Executing")):
        reason = f": {record.failure_reason}" if record.failure_reason else ""
        raise GitopsError(
            f"{record.pipeline_name} execution {record.execution_id}: {record.status}{reason}",
            hint="the failed step's reason and log are shown above (`gitops status` lists the last execution)",
        )
