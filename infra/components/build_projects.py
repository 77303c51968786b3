"""CodeBuild projects of the env pipeline: one gitops verb each, KMS-encrypted, logged, cached in S3."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from gitops.config import StageConfig
from infra import names
from infra.components.log_groups import encrypted_log_group

BUILD_IMAGE = codebuild.LinuxBuildImage.STANDARD_7_0


def verb_project(
    scope: Construct,
    id: str,
    *,
    cfg: StageConfig,
    verb: str,
    build_spec: codebuild.BuildSpec,
    key: kms.IKey,
    cache_bucket: s3.IBucket,
    environment: dict[str, str],
    description: str,
) -> codebuild.PipelineProject:
    """A project that runs `gitops <verb>` on the env repository's checkout.

    The role comes from the Base stack (by its fixed name) and is imported immutable: its
    policies are written there, scoped by hand, so nothing here widens them.

    Not in the VPC: the builds install the release's engine wheel and its dependencies from the
    Python package index and call public AWS APIs, and the VPC has no route out by design.
    """
    role = iam.Role.from_role_name(scope, f"{id}Role", names.build_role_name(cfg, verb), mutable=False)
    log_group = encrypted_log_group(
        scope,
        f"{id}Logs",
        name=names.build_log_group_name(cfg, verb),
        key=key,
        retention_days=cfg.log_retention_days,
        retain=cfg.retain_data,
    )
    return codebuild.PipelineProject(
        scope,
        id,
        project_name=names.build_project_name(cfg, verb),
        description=description,
        role=role,
        build_spec=build_spec,
        encryption_key=key,
        environment=codebuild.BuildEnvironment(
            build_image=BUILD_IMAGE,
            compute_type=codebuild.ComputeType.SMALL,
            privileged=False,
        ),
        environment_variables={
            name: codebuild.BuildEnvironmentVariable(value=value) for name, value in sorted(environment.items())
        },
        cache=codebuild.Cache.bucket(cache_bucket, prefix=f"codebuild-cache/{verb}"),
        logging=codebuild.LoggingOptions(
            cloud_watch=codebuild.CloudWatchLoggingOptions(log_group=log_group),
        ),
        timeout=Duration.minutes(60),
        queued_timeout=Duration.hours(8),
    )
