"""The verify build's role (<prefix>-verify-build): read what is deployed, send one smoke request."""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from constructs import Construct

from gitops.config import StageConfig
from infra import names
from infra.roles.arns import StageArns
from infra.roles.role import codebuild_principal, stage_role
from infra.roles.statements import allow, artifacts_write, build_basics, in_region, stacks_read


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
        # What the endpoint runs: its config's model (image and artifact), checked against the pin.
        allow(["sagemaker:DescribeModel"], [arns.sagemaker("model/*")], sid="ReadServedModel"),
        allow(["sagemaker:DescribeModelPackageGroup"], [arns.model_package_group], sid="ReadModelPackageGroup"),
        *live_read(cfg, arns, key_arn),
        # The release page (gitops report --upload): compared with the release the stage held before,
        # from its env repository's history, and put where the approval action links to.
        allow(["codecommit:GitPull"], [arns.env_repository], sid="ReadReleaseHistory"),
        artifacts_write(arns, ["reports/"]),
    ]


# What verify reads back (gitops.deploy.live) and CloudFormation's drift detection, which reads each
# resource with the caller's permissions: read-only. EC2, alarm, scaling and log-group describes have
# no resource-level permissions; resources verify cannot read show as "drift detection incomplete".
_UNSCOPED_READS = [
    "application-autoscaling:DescribeScalableTargets",
    "application-autoscaling:DescribeScalingPolicies",
    "cloudformation:DescribeStackDriftDetectionStatus",
    "cloudwatch:DescribeAlarms",
    "ec2:DescribeFlowLogs",
    "ec2:DescribeNetworkAcls",
    "ec2:DescribeRouteTables",
    "ec2:DescribeSecurityGroupRules",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcAttribute",
    "ec2:DescribeVpcEndpoints",
    "ec2:DescribeVpcs",
    "logs:DescribeLogGroups",
]
_BUCKET_READS = [
    "s3:GetBucketLogging",
    "s3:GetBucketOwnershipControls",
    "s3:GetBucketPolicy",
    "s3:GetBucketPublicAccessBlock",
    "s3:GetBucketTagging",
    "s3:GetBucketVersioning",
    "s3:GetEncryptionConfiguration",
    "s3:GetLifecycleConfiguration",
]


def live_read(cfg: StageConfig, arns: StageArns, key_arn: str) -> list[iam.PolicyStatement]:
    return [
        allow(
            ["cloudformation:DetectStackDrift", "cloudformation:DescribeStackResourceDrifts"],
            [arns.stacks],
            sid="DetectStackDrift",
        ),
        allow(_UNSCOPED_READS, ["*"], in_region(cfg), sid="ReadBackUnscoped"),
        allow(_BUCKET_READS, [arns.artifact_bucket], sid="ReadBackBucket"),
        allow(["kms:DescribeKey", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus"], [key_arn], sid="ReadBackKey"),
    ]
