"""The promote build's role (<prefix>-promote-build): check the approval, push as the target's promotion role."""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from constructs import Construct

from gitops.config import StageConfig
from infra import names
from infra.roles.arns import StageArns
from infra.roles.role import codebuild_principal, stage_role
from infra.roles.statements import allow, build_basics


def create(scope: Construct, cfg: StageConfig, target: StageConfig, key_arn: str) -> iam.Role:
    return stage_role(
        scope,
        "PromoteBuildRole",
        name=names.build_role_name(cfg, names.PROMOTE),
        principal=codebuild_principal(cfg),
        description=f"CodeBuild: gitops {names.PROMOTE} --stage {cfg.stage}",
        statements=statements(cfg, target, key_arn),
    )


def statements(cfg: StageConfig, target: StageConfig, key_arn: str) -> list[iam.PolicyStatement]:
    arns = StageArns(cfg)
    return [
        *build_basics(arns, names.PROMOTE, key_arn),
        allow(
            ["codepipeline:GetPipelineExecution", "codepipeline:GetPipelineState", "codepipeline:ListActionExecutions"],
            [arns.release_pipeline],
            sid="ReadApproval",
        ),
        # GitPull: the stage's own history; GetFile: the release in the execution's source commit.
        allow(["codecommit:GetFile", "codecommit:GitPull"], [arns.env_repository], sid="ReadOwnHistory"),
        # The app image the release pins, read from the stage's own repository to copy it into the target's.
        allow(
            [
                "ecr:BatchCheckLayerAvailability",
                "ecr:BatchGetImage",
                "ecr:DescribeImages",
                "ecr:GetDownloadUrlForLayer",
            ],
            [arns.app_repository],
            sid="ReadAppImage",
        ),
        # The model the release pins: read from this stage's own verified copy, carried to the target.
        allow(
            ["s3:ListBucket"],
            [arns.artifact_bucket],
            {"StringLike": {"s3:prefix": ["models/*"]}},
            sid="ListServedModels",
        ),
        allow(["s3:GetObject"], [arns.artifact_objects("models/")], sid="ReadServedModels"),
        allow(
            ["kms:Decrypt"],
            [key_arn],
            {"StringEquals": {"kms:ViaService": [f"s3.{cfg.region}.amazonaws.com"]}},
            sid="DecryptServedModels",
        ),
        allow(
            ["sts:AssumeRole"],
            [names.role_arn(target.account, names.promotion_role_name(target))],
            sid="AssumeTargetPromotionRole",
        ),
    ]
