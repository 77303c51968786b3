"""IAM statement building blocks that several of a stage's roles share.

Nothing allows every action. Resource "*" appears only for actions without resource-level
permissions or on resources with generated ids (EC2), and every such statement carries a
condition (the stage's region, a service, a namespace).
"""

from __future__ import annotations

from aws_cdk import aws_iam as iam

from gitops.config import StageConfig
from infra import names
from infra.roles.arns import StageArns

KMS_USE = [
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
]


def allow(
    actions: list[str], resources: list[str], conditions: dict | None = None, sid: str | None = None
) -> iam.PolicyStatement:
    return iam.PolicyStatement(actions=sorted(actions), resources=resources, conditions=conditions, sid=sid)


def in_region(cfg: StageConfig) -> dict:
    return {"StringEquals": {"aws:RequestedRegion": cfg.region}}


def kms_use(key_arn: str, via_services: list[str] | None = None) -> iam.PolicyStatement:
    conditions = {"StringEquals": {"kms:ViaService": via_services}} if via_services else None
    return allow(KMS_USE, [key_arn], conditions, sid="UseStageKey")


def artifacts_read(arns: StageArns) -> list[iam.PolicyStatement]:
    return [
        allow(["s3:GetBucketLocation", "s3:GetBucketVersioning", "s3:ListBucket"], [arns.artifact_bucket]),
        allow(["s3:GetObject", "s3:GetObjectVersion"], [arns.artifact_objects()]),
    ]


def artifacts_write(arns: StageArns, prefixes: list[str]) -> iam.PolicyStatement:
    return allow(["s3:AbortMultipartUpload", "s3:PutObject"], [arns.artifact_objects(prefix) for prefix in prefixes])


def build_basics(arns: StageArns, verb: str, key_arn: str) -> list[iam.PolicyStatement]:
    """What every env-pipeline build needs: its log group, its reports, its cache and the input artifact."""
    return [
        allow(
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            [arns.log_group(names.build_log_group_name(arns.cfg, verb))],
            sid="WriteBuildLogs",
        ),
        allow(
            [
                "codebuild:BatchPutCodeCoverages",
                "codebuild:BatchPutTestCases",
                "codebuild:CreateReport",
                "codebuild:CreateReportGroup",
                "codebuild:UpdateReport",
            ],
            [arns.build_report_groups(verb)],
            sid="WriteBuildReports",
        ),
        *artifacts_read(arns),
        artifacts_write(arns, [f"codebuild-cache/{verb}/"]),
        kms_use(key_arn),
    ]


def stacks_read(arns: StageArns) -> iam.PolicyStatement:
    return allow(
        [
            "cloudformation:DescribeStackEvents",
            "cloudformation:DescribeStackResource",
            "cloudformation:DescribeStackResources",
            "cloudformation:DescribeStacks",
            "cloudformation:GetTemplate",
            "cloudformation:ListStackResources",
        ],
        [arns.stacks],
        sid="ReadStageStacks",
    )


def stage_parameters_read(arns: StageArns) -> iam.PolicyStatement:
    """CloudFormation resolves the stacks' SSM-typed parameters with the caller's permissions."""
    return allow(
        ["ssm:GetParameter", "ssm:GetParameters"],
        [arns.stage_parameters, arns.bootstrap_version_parameter],
        sid="ReadStageParameters",
    )


def pass_sagemaker_execution_role(cfg: StageConfig, sid: str) -> iam.PolicyStatement:
    return allow(
        ["iam:PassRole"],
        [cfg.sagemaker_execution_role_arn],
        {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        sid=sid,
    )
