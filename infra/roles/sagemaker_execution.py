"""The SageMaker execution role (<prefix>-sagemaker-execution): pipelines, jobs, feature group, endpoint."""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from constructs import Construct

from gitops.config import StageConfig
from infra.roles.arns import StageArns
from infra.roles.role import stage_role
from infra.roles.statements import KMS_USE, allow, in_region, pass_sagemaker_execution_role


def create(scope: Construct, cfg: StageConfig, key_arn: str) -> iam.Role:
    return stage_role(
        scope,
        "SageMakerExecutionRole",
        name=cfg.sagemaker_execution_role_name,
        principal=iam.ServicePrincipal("sagemaker.amazonaws.com"),
        description="SageMaker pipelines, jobs, feature group and endpoint of the stage",
        statements=statements(cfg, key_arn),
    )


def statements(cfg: StageConfig, key_arn: str) -> list[iam.PolicyStatement]:
    """SageMaker pipelines, jobs, the feature group and the endpoint run as this role."""
    arns = StageArns(cfg)
    return [
        allow(
            ["s3:GetBucketAcl", "s3:GetBucketLocation", "s3:ListBucket"],
            [arns.artifact_bucket],
            sid="ListArtifactBucket",
        ),
        allow(
            ["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject", "s3:PutObject", "s3:PutObjectAcl"],
            [arns.artifact_objects()],
            sid="ReadWriteArtifacts",
        ),
        allow(KMS_USE + ["kms:CreateGrant"], [key_arn], sid="UseStageKey"),
        allow(
            ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
            [arns.any_in_stage("logs", "log-group:/aws/sagemaker/")],
            sid="WriteSageMakerLogs",
        ),
        allow(
            ["cloudwatch:PutMetricData"],
            ["*"],
            {"StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/*", "aws/sagemaker/*", "SageMaker*"]}},
            sid="PutSageMakerMetrics",
        ),
        allow(["ecr:GetAuthorizationToken"], ["*"], in_region(cfg), sid="EcrLogin"),
        allow(
            ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            [f"arn:aws:ecr:{cfg.region}:*:repository/*"],
            sid="PullContainerImages",
        ),
        allow(
            [
                "ec2:DescribeDhcpOptions",
                "ec2:DescribeNetworkInterfaces",
                "ec2:DescribeSecurityGroups",
                "ec2:DescribeSubnets",
                "ec2:DescribeVpcs",
            ],
            ["*"],
            in_region(cfg),
            sid="DescribeVpc",
        ),
        # ENIs of VPC jobs and the endpoint: generated ids, so held to the resource types they touch.
        allow(
            [
                "ec2:CreateNetworkInterface",
                "ec2:CreateNetworkInterfacePermission",
                "ec2:DeleteNetworkInterface",
                "ec2:DeleteNetworkInterfacePermission",
            ],
            [arns.any_in_stage("ec2", f"{kind}/") for kind in ("network-interface", "security-group", "subnet")],
            sid="JobNetworkInterfaces",
        ),
        allow(
            [
                "sagemaker:AddTags",
                "sagemaker:CreateProcessingJob",
                "sagemaker:CreateTrainingJob",
                "sagemaker:DescribeProcessingJob",
                "sagemaker:DescribeTrainingJob",
                "sagemaker:StopProcessingJob",
                "sagemaker:StopTrainingJob",
            ],
            [arns.sagemaker("processing-job/*"), arns.sagemaker("training-job/*")],
            sid="RunPipelineJobs",
        ),
        allow(
            [
                "sagemaker:CreateModelPackage",
                "sagemaker:DescribeModelPackage",
                "sagemaker:DescribeModelPackageGroup",
                "sagemaker:ListModelPackages",
                "sagemaker:UpdateModelPackage",
            ],
            [arns.model_package_group, arns.model_packages],
            sid="RegisterModels",
        ),
        allow(
            [
                "sagemaker:BatchGetRecord",
                "sagemaker:DescribeFeatureGroup",
                "sagemaker:GetRecord",
                "sagemaker:PutRecord",
            ],
            [arns.feature_group],
            sid="UseFeatureGroup",
        ),
        allow(
            [
                "glue:BatchCreatePartition",
                "glue:CreateTable",
                "glue:GetDatabase",
                "glue:GetPartitions",
                "glue:GetTable",
                "glue:UpdateTable",
            ],
            arns.feature_store_catalog,
            sid="FeatureStoreCatalog",
        ),
        allow(
            [
                "athena:GetQueryExecution",
                "athena:GetQueryResults",
                "athena:GetWorkGroup",
                "athena:StartQueryExecution",
                "athena:StopQueryExecution",
            ],
            [arns.athena_workgroup],
            sid="QueryOfflineStore",
        ),
        pass_sagemaker_execution_role(cfg, sid="PassSelfToJobs"),
    ]
