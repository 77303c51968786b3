"""The verify build's role (<prefix>-verify-build): read what is deployed, send one smoke request."""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from constructs import Construct

from gitops.config import StageConfig
from infra import names
from infra.roles.arns import StageArns
from infra.roles.role import codebuild_principal, stage_role
from infra.roles.statements import allow, build_basics, stacks_read


def create(scope: Construct, cfg: StageConfig, key_arn: str) -> iam.Role:
    return stage_role(
        scope,
        "VerifyBuildRole",
        name=names.build_role_name(cfg, names.VERIFY),
        principal=codebuild_principal(cfg),
        description=f"CodeBuild: gitops {names.VERIFY} --stage {cfg.stage}",
        statements=statements(cfg, key_arn),
    )


def statements(cfg: StageConfig, key_arn: str) -> list[iam.PolicyStatement]:
    arns = StageArns(cfg)
    return [
        *build_basics(arns, names.VERIFY, key_arn),
        stacks_read(arns),
        allow(
            ["sagemaker:DescribePipeline", "sagemaker:ListPipelineExecutions"],
            [arns.sagemaker_pipelines],
            sid="ReadSageMakerPipelines",
        ),
        allow(["sagemaker:DescribeEndpoint", "sagemaker:InvokeEndpoint"], [arns.endpoint], sid="SmokeTestEndpoint"),
        allow(["sagemaker:DescribeEndpointConfig"], [arns.sagemaker("endpoint-config/*")], sid="ReadEndpointConfig"),
        allow(["sagemaker:DescribeModelPackageGroup"], [arns.model_package_group], sid="ReadModelPackageGroup"),
    ]
