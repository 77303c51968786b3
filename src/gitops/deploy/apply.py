"""`gitops deploy`: put one stage of a release into its account: bootstrap, assets, stacks, pipelines.

One code path for real AWS and the embedded moto server. Everything that can be checked without
AWS (the gate, the release, the stage, every template's structure, parameters) is checked before
the first call; the first call proves the credentials belong to the stage's account. On the
embedded target each template is deployed as its moto-supported projection, and what was left out
is reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from gitops.deploy.assets import Assets
from gitops.deploy.aws import AWS_ERRORS, StageClients, check_account
from gitops.deploy.plan import StagePlan, plan_stage
from gitops.deploy.report import DeployReport
from gitops.deploy.sagemaker_pipelines import ensure_model_package_group, upsert_pipeline
from gitops.deploy.stacks import StackDeployer
from gitops.errors import DeployError, DeployFailed, aws_error_text
from gitops.model.artifact import ensure_stage_artifact, split_s3_uri
from gitops.progress import Progress
from gitops.scan.attestation import require_gate
from gitops.target import Target


def _stage_model(plan: StagePlan, aws: StageClients, report: DeployReport, say: Progress) -> None:
    """The pinned artifact in the stage's own bucket, its sha256 checked, before any stack changes.

    Only the stage the model was trained in (its bucket is the pinned URI's) copies it from there;
    any other stage must already hold it: promotion put it there.
    """
    model = plan.pin.model
    report.model = plan.pin.describe()
    if model is None:
        say("model: none pinned (models/serving.yaml says model: null); no endpoint")
        return
    trained_here = split_s3_uri(model.artifact.uri)[0] == plan.config.artifact_bucket_name
    staged = ensure_stage_artifact(model, plan.config, aws.s3, aws.s3 if trained_here else None)
    report.model_artifact = f"{staged.uri}: {staged.how}"
    say(f"model: {model.short()} at {staged.uri} ({staged.how})")


def _run(plan: StagePlan, target: Target, say: Progress) -> DeployReport:
    config = plan.config
    report = DeployReport(plan.manifest.release_id, config.stage, config.account, config.region, target.kind)
    aws = StageClients(target, config)
    assets = Assets(plan, aws, report, say)
    stacks = StackDeployer(plan, target, aws, assets, report, say)

    def timed(phase: str, step: Callable[[], object]) -> None:
        t0 = time.perf_counter()
        try:
            step()
        finally:
            report.timings[phase] = round(time.perf_counter() - t0, 2)

    def model_package_group() -> None:
        report.model_package_group = ensure_model_package_group(aws.sagemaker, config, say)

    def pipelines() -> None:
        for pipeline in plan.pipelines:
            report.pipelines.append(upsert_pipeline(aws.sagemaker, config, report.release_id, pipeline, say))

    timed("identity", lambda: check_account(aws.sts, config))
    try:
        timed("bootstrap", assets.embedded_bootstrap if target.is_local else assets.require_bootstrap)
    except AWS_ERRORS as exc:
        raise DeployError(f"stage '{config.stage}': checking the CDK bootstrap: {aws_error_text(exc)}") from exc
    try:
        timed("model-artifact", lambda: _stage_model(plan, aws, report, say))
    except AWS_ERRORS as exc:
        raise DeployError(f"stage '{config.stage}': staging the pinned model: {aws_error_text(exc)}") from exc
    try:
        timed("stack-assets", assets.upload_stack_assets)
        timed("stacks", stacks.deploy_all)
        timed("model-package-group", model_package_group)
        timed("pipeline-assets", assets.upload_pipeline_assets)
        timed("pipelines", pipelines)
    except DeployFailed as exc:
        report.ok = False
        report.error = str(exc)
    except AWS_ERRORS as exc:
        report.ok = False
        report.error = aws_error_text(exc)
    return report


def deploy_stage(
    release_dir: Path,
    stage: str,
    target: Target,
    *,
    progress: Progress | None = None,
) -> DeployReport:
    """Deploy one stage of a release: the pinned model's artifact, stacks by change set, assets, SageMaker pipelines.

    The model served is the release's model.json, exactly; deploy never asks a registry for one.

    Bad input (release, stage, template, parameters) and refusals (wrong account, no bootstrap)
    raise before anything changes. A failing step during the deploy stops it and is returned in
    the report (ok=False, error); report.raise_for_failure() turns it into DeployFailed.
    """
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    require_gate(release_dir, progress=say)  # the gate runs where the deploy runs (docs/design.md §7.6)
    t0 = time.perf_counter()
    plan = plan_stage(release_dir, stage, target)
    for stack in plan.stacks:
        if stack.projection and stack.projection.dropped:
            say(
                f"{stack.stack_name}: embedded projection drops {len(stack.projection.dropped)} of"
                f" {len(stack.template['Resources'])} resources"
            )
    planned = round(time.perf_counter() - t0, 2)
    report = _run(plan, target, say)
    report.timings = {"plan": planned} | report.timings
    report.seconds = round(time.perf_counter() - started, 2)
    return report
