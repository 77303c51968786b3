"""The deploy build's role (<prefix>-deploy-build): upload assets, run change sets, upsert SageMaker pipelines."""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from constructs import Construct

from gitops.config import StageConfig
from infra import names
from infra.roles.arns import StageArns
from infra.roles.role import codebuild_principal, stage_role
from infra.roles.statements import (
    allow,
    artifacts_write,
    build_basics,
    in_region,
    pass_sagemaker_execution_role,
    stacks_read,
    stage_parameters_read,
)


def create(scope: Construct, cfg: StageConfig, key_arn: str) -> iam.Role:
    return stage_role(
        scope,
        "DeployBuildRole",
        name=names.build_role_name(cfg, names.DEPLOY),
        principal=codebuild_principal(cfg),
        description=f"CodeBuild: gitops {names.DEPLOY} --stage {cfg.stage}",
        statements=statements(cfg, key_arn),
    )


def statements(cfg: StageConfig, key_arn: str) -> list[iam.PolicyStatement]:
    """`gitops deploy`: upload assets, run change sets as the deploy role, upsert SageMaker pipelines."""
    arns = StageArns(cfg)
    return [
        *build_basics(arns, names.DEPLOY, key_arn),
        # assets/: step code; models/: the stage's content-addressed copy of the pinned model.
        artifacts_write(arns, ["assets/", "models/"]),
        allow(["s3:GetBucketLocation", "s3:ListBucket"], [arns.assets_bucket], sid="ListCdkAssets"),
        allow(["s3:GetObject", "s3:PutObject"], [f"{arns.assets_bucket}/*"], sid="UploadCdkAssets"),
        stacks_read(arns),
        allow(
            [
                "cloudformation:CreateChangeSet",
                "cloudformation:DeleteChangeSet",
                # A stack an earlier failed create left empty (ROLLBACK_COMPLETE) is deleted and re-created.
                "cloudformation:DeleteStack",
                "cloudformation:DescribeChangeSet",
                "cloudformation:ExecuteChangeSet",
                "cloudformation:ListChangeSets",
            ],
            [arns.stacks],
            sid="ChangeStageStacks",
        ),
        allow(
            ["cloudformation:GetTemplateSummary", "cloudformation:ValidateTemplate"],
            ["*"],
            in_region(cfg),
            sid="ValidateTemplates",
        ),
        stage_parameters_read(arns),
        allow(
            ["iam:PassRole"],
            [arns.role(names.deploy_role_name(cfg))],
            {"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}},
            sid="PassDeployRole",
        ),
        allow(
            [
                "sagemaker:AddTags",
                "sagemaker:CreatePipeline",
                "sagemaker:DescribePipeline",
                "sagemaker:ListTags",
                "sagemaker:UpdatePipeline",
            ],
            [arns.sagemaker_pipelines],
            sid="UpsertSageMakerPipelines",
        ),
        pass_sagemaker_execution_role(cfg, sid="PassSageMakerRole"),
        # Deploy serves the release's pin and never reads a model package: only the group is ensured.
        allow(
            ["sagemaker:CreateModelPackageGroup", "sagemaker:DescribeModelPackageGroup"],
            [arns.model_package_group],
            sid="EnsureModelPackageGroup",
        ),
        # The App stack deployed: deploy waits for its service to settle on the release's image.
        allow(
            ["ecs:DescribeServices"],
            [f"arn:aws:ecs:{cfg.region}:{cfg.account}:service/{cfg.app_cluster_name}/{cfg.app_service_name}"],
            sid="WatchAppService",
        ),
        # DescribeTaskDefinition has no resource-level permissions.
        allow(["ecs:DescribeTaskDefinition"], ["*"], in_region(cfg), sid="ReadAppTaskDefinitions"),
    ]
