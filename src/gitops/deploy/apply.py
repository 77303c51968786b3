"""`gitops deploy`: put one stage of a release into its account: bootstrap, assets, stacks, pipelines.

One code path for real AWS and the embedded moto server. Everything that can be checked without
AWS (the gate, the release, the stage, every template's structure, parameters) is checked before
the first call; the first call proves the credentials belong to the stage's account. On the
embedded target each template is deployed as its moto-supported projection, and what was left out
is reported.
"""

from __future__ import annotations

import re
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
from gitops.progress import Progress
from gitops.scan.attestation import require_gate
from gitops.target import Target

_MODEL_PACKAGE_ARN = re.compile(r"arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:model-package/[^\s]+")


def _check_model_package_arn(arn: str) -> None:
    if arn and not _MODEL_PACKAGE_ARN.fullmatch(arn):
        raise DeployError(
            f"--model-package-arn '{arn}' is not a SageMaker model package ARN",
            hint="pass arn:aws:sagemaker:<region>:<account>:model-package/<group>/<version>, or omit it",
        )


def _run(plan: StagePlan, target: Target, say: Progress, model_package_arn: str | None) -> DeployReport:
    config = plan.config
    report = DeployReport(plan.manifest.release_id, config.stage, config.account, config.region, target.kind)
    aws = StageClients(target, config)
    assets = Assets(plan, aws, report, say)
    stacks = StackDeployer(plan, target, aws, assets, report, say, model_package_arn)

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
    model_package_arn: str | None = None,
) -> DeployReport:
    """Deploy one stage of a release: stacks by change set, assets, SageMaker pipelines.

    Bad input (release, stage, template, parameters) and refusals (wrong account, no bootstrap)
    raise before anything changes. A failing step during the deploy stops it and is returned in
    the report (ok=False, error); report.raise_for_failure() turns it into DeployFailed.
    """
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    require_gate(release_dir, progress=say)  # the gate runs where the deploy runs (docs/design.md §7.6)
    if model_package_arn is not None:
        _check_model_package_arn(model_package_arn)
    t0 = time.perf_counter()
    plan = plan_stage(release_dir, stage, target)
    for stack in plan.stacks:
        if stack.projection and stack.projection.dropped:
            say(
                f"{stack.stack_name}: embedded projection drops {len(stack.projection.dropped)} of"
                f" {len(stack.template['Resources'])} resources"
            )
    planned = round(time.perf_counter() - t0, 2)
    report = _run(plan, target, say, model_package_arn)
    report.timings = {"plan": planned} | report.timings
    report.seconds = round(time.perf_counter() - started, 2)
    return report
