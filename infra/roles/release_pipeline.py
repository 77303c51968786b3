"""The release pipeline's role (<prefix>-codepipeline): read the env repository, run the builds, ask for approval."""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from constructs import Construct

from gitops.config import StageConfig
from infra import names
from infra.roles.arns import StageArns
from infra.roles.role import stage_role
from infra.roles.statements import allow, artifacts_read, artifacts_write, kms_use


def create(scope: Construct, cfg: StageConfig, key_arn: str) -> iam.Role:
    return stage_role(
        scope,
        "PipelineRole",
        name=names.pipeline_role_name(cfg),
        principal=iam.ServicePrincipal("codepipeline.amazonaws.com"),
        description="The env repository's release pipeline",
        statements=statements(cfg, key_arn),
    )


def statements(cfg: StageConfig, key_arn: str) -> list[iam.PolicyStatement]:
    arns = StageArns(cfg)
    verbs = [names.DEPLOY, names.VERIFY] + ([names.PROMOTE] if cfg.promote_to else [])
    result = [
        *artifacts_read(arns),
        artifacts_write(arns, [""]),
        kms_use(key_arn),
        allow(
            [
                "codecommit:CancelUploadArchive",
                "codecommit:GetBranch",
                "codecommit:GetCommit",
                "codecommit:GetRepository",
                "codecommit:GetUploadArchiveStatus",
                "codecommit:UploadArchive",
            ],
            [arns.env_repository],
            sid="ReadEnvRepository",
        ),
        allow(
            ["codebuild:BatchGetBuilds", "codebuild:StartBuild", "codebuild:StopBuild"],
            [arns.build_project(verb) for verb in verbs],
            sid="RunBuilds",
        ),
    ]
    if cfg.promote_to:
        result.append(allow(["sns:Publish"], [arns.approval_topic], sid="AskForApproval"))
    return result
