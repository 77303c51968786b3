"""IAM policy statements of a stage's roles, scoped to the stage's own names and ARNs.

One function per role returns its statements; small building blocks are shared. Nothing allows
every action. Resource "*" appears only for actions without resource-level permissions or on
resources with generated ids (EC2), and every such statement carries a condition (the stage's
region, a service, a namespace).
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_iam as iam

from gitops.config import StageConfig
from infra import names

# CDK's default bootstrap (qualifier hnb659fds) holds the stacks' file assets and version parameter.
CDK_QUALIFIER = "hnb659fds"

# What CloudFormation's handlers call for the stage's VPC, subnets, ACLs, groups, endpoints and flow
# logs, and for its buckets (the pinned cfn-lint provider schemas list them), named one by one
# rather than as Describe*/GetBucket*/PutBucket* wildcards.
_EC2_DESCRIBE = [
    "ec2:DescribeFlowLogs",
    "ec2:DescribeInstances",
    "ec2:DescribeNetworkAcls",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeRouteTables",
    "ec2:DescribeSecurityGroupRules",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeTags",
    "ec2:DescribeVpcAttribute",
    "ec2:DescribeVpcEncryptionControls",
    "ec2:DescribeVpcEndpoints",
    "ec2:DescribeVpcs",
]
_S3_BUCKET_READ = [
    "s3:GetBucketAbac",
    "s3:GetBucketAcl",
    "s3:GetBucketCORS",
    "s3:GetBucketLocation",
    "s3:GetBucketLogging",
    "s3:GetBucketMetadataTableConfiguration",
    "s3:GetBucketNotification",
    "s3:GetBucketObjectLockConfiguration",
    "s3:GetBucketOwnershipControls",
    "s3:GetBucketPolicy",
    "s3:GetBucketPolicyStatus",
    "s3:GetBucketPublicAccessBlock",
    "s3:GetBucketTagging",
    "s3:GetBucketVersioning",
    "s3:GetBucketWebsite",
]
_S3_BUCKET_WRITE = [
    "s3:PutBucketAbac",
    "s3:PutBucketAcl",
    "s3:PutBucketCORS",
    "s3:PutBucketLogging",
    "s3:PutBucketNotification",
    "s3:PutBucketOwnershipControls",
    "s3:PutBucketPolicy",
    "s3:PutBucketPublicAccessBlock",
    "s3:PutBucketTagging",
    "s3:PutBucketVersioning",
    "s3:PutBucketWebsite",
]

_KMS_USE = [
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
]


@dataclass(frozen=True)
class StageArns:
    """ARNs of a stage's resources, built from the fixed names of StageConfig and infra.names."""

    cfg: StageConfig

    def _arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.cfg.region}:{self.cfg.account}:{resource}"

    @property
    def artifact_bucket(self) -> str:
        return f"arn:aws:s3:::{self.cfg.artifact_bucket_name}"

    def artifact_objects(self, prefix: str = "") -> str:
        return f"{self.artifact_bucket}/{prefix}*"

    @property
    def assets_bucket(self) -> str:
        return f"arn:aws:s3:::cdk-{CDK_QUALIFIER}-assets-{self.cfg.account}-{self.cfg.region}"

    @property
    def env_repository(self) -> str:
        return self._arn("codecommit", self.cfg.env_repository_name)

    @property
    def stacks(self) -> str:
        return self._arn("cloudformation", f"stack/{self.cfg.prefix}-*/*")

    @property
    def release_pipeline(self) -> str:
        return self._arn("codepipeline", names.release_pipeline_name(self.cfg))

    def build_project(self, verb: str) -> str:
        return self._arn("codebuild", f"project/{names.build_project_name(self.cfg, verb)}")

    def build_report_groups(self, verb: str) -> str:
        return self._arn("codebuild", f"report-group/{names.build_project_name(self.cfg, verb)}-*")

    def log_group(self, name: str) -> str:
        return self._arn("logs", f"log-group:{name}:*")

    @property
    def approval_topic(self) -> str:
        return self._arn("sns", names.approval_topic_name(self.cfg))

    @property
    def stage_roles(self) -> str:
        return f"arn:aws:iam::{self.cfg.account}:role/{self.cfg.prefix}-*"

    @property
    def stage_parameters(self) -> str:
        return self._arn("ssm", f"parameter/{names.ssm_parameter_path(self.cfg)}/*")

    @property
    def bootstrap_version_parameter(self) -> str:
        return self._arn("ssm", f"parameter/cdk-bootstrap/{CDK_QUALIFIER}/version")

    def sagemaker(self, resource: str) -> str:
        return self._arn("sagemaker", resource)

    @property
    def model_package_group(self) -> str:
        return self.sagemaker(f"model-package-group/{self.cfg.model_package_group_name}")

    @property
    def model_packages(self) -> str:
        return self.sagemaker(f"model-package/{self.cfg.model_package_group_name}/*")

    @property
    def feature_group(self) -> str:
        return self.sagemaker(f"feature-group/{self.cfg.feature_group_name}")

    @property
    def endpoint(self) -> str:
        return self.sagemaker(f"endpoint/{self.cfg.endpoint_name}")

    @property
    def sagemaker_pipelines(self) -> str:
        return self.sagemaker(f"pipeline/{self.cfg.prefix}-*")

    def any_in_stage(self, service: str, prefix: str) -> str:
        """Every resource of the service in the stage's account and region whose id starts with prefix."""
        return self._arn(service, f"{prefix}*")


def _allow(
    actions: list[str], resources: list[str], conditions: dict | None = None, sid: str | None = None
) -> iam.PolicyStatement:
    return iam.PolicyStatement(actions=sorted(actions), resources=resources, conditions=conditions, sid=sid)


def _in_region(cfg: StageConfig) -> dict:
    return {"StringEquals": {"aws:RequestedRegion": cfg.region}}


def feature_store_catalog(cfg: StageConfig) -> list[str]:
    """The Glue database SageMaker registers offline-store tables in (its default)."""
    glue = f"arn:aws:glue:{cfg.region}:{cfg.account}"
    return [f"{glue}:catalog", f"{glue}:database/sagemaker_featurestore", f"{glue}:table/sagemaker_featurestore/*"]


# Building blocks -----------------------------------------------------------------------------


def kms_use(key_arn: str, via_services: list[str] | None = None) -> iam.PolicyStatement:
    conditions = {"StringEquals": {"kms:ViaService": via_services}} if via_services else None
    return _allow(_KMS_USE, [key_arn], conditions, sid="UseStageKey")


def artifacts_read(arns: StageArns) -> list[iam.PolicyStatement]:
    return [
        _allow(["s3:GetBucketLocation", "s3:GetBucketVersioning", "s3:ListBucket"], [arns.artifact_bucket]),
        _allow(["s3:GetObject", "s3:GetObjectVersion"], [arns.artifact_objects()]),
    ]


def artifacts_write(arns: StageArns, prefixes: list[str]) -> iam.PolicyStatement:
    return _allow(["s3:AbortMultipartUpload", "s3:PutObject"], [arns.artifact_objects(prefix) for prefix in prefixes])


def build_basics(arns: StageArns, verb: str, key_arn: str) -> list[iam.PolicyStatement]:
    """What every env-pipeline build needs: its log group, its reports, its cache and the input artifact."""
    return [
        _allow(
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            [arns.log_group(names.build_log_group_name(arns.cfg, verb))],
            sid="WriteBuildLogs",
        ),
        _allow(
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
    return _allow(
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
    return _allow(
        ["ssm:GetParameter", "ssm:GetParameters"],
        [arns.stage_parameters, arns.bootstrap_version_parameter],
        sid="ReadStageParameters",
    )


# Roles ---------------------------------------------------------------------------------------


def sagemaker_execution(cfg: StageConfig, key_arn: str) -> list[iam.PolicyStatement]:
    """SageMaker pipelines, jobs, the feature group and the endpoint run as this role."""
    arns = StageArns(cfg)
    return [
        _allow(
            ["s3:GetBucketAcl", "s3:GetBucketLocation", "s3:ListBucket"],
            [arns.artifact_bucket],
            sid="ListArtifactBucket",
        ),
        _allow(
            ["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject", "s3:PutObject", "s3:PutObjectAcl"],
            [arns.artifact_objects()],
            sid="ReadWriteArtifacts",
        ),
        _allow(_KMS_USE + ["kms:CreateGrant"], [key_arn], sid="UseStageKey"),
        _allow(
            ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
            [arns.any_in_stage("logs", "log-group:/aws/sagemaker/")],
            sid="WriteSageMakerLogs",
        ),
        _allow(
            ["cloudwatch:PutMetricData"],
            ["*"],
            {"StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/*", "aws/sagemaker/*", "SageMaker*"]}},
            sid="PutSageMakerMetrics",
        ),
        _allow(["ecr:GetAuthorizationToken"], ["*"], _in_region(cfg), sid="EcrLogin"),
        _allow(
            ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            [f"arn:aws:ecr:{cfg.region}:*:repository/*"],
            sid="PullContainerImages",
        ),
        _allow(
            [
                "ec2:DescribeDhcpOptions",
                "ec2:DescribeNetworkInterfaces",
                "ec2:DescribeSecurityGroups",
                "ec2:DescribeSubnets",
                "ec2:DescribeVpcs",
            ],
            ["*"],
            _in_region(cfg),
            sid="DescribeVpc",
        ),
        # ENIs of VPC jobs and the endpoint: generated ids, so held to the resource types they touch.
        _allow(
            [
                "ec2:CreateNetworkInterface",
                "ec2:CreateNetworkInterfacePermission",
                "ec2:DeleteNetworkInterface",
                "ec2:DeleteNetworkInterfacePermission",
            ],
            [arns.any_in_stage("ec2", f"{kind}/") for kind in ("network-interface", "security-group", "subnet")],
            sid="JobNetworkInterfaces",
        ),
        _allow(
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
        _allow(
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
        _allow(
            [
                "sagemaker:BatchGetRecord",
                "sagemaker:DescribeFeatureGroup",
                "sagemaker:GetRecord",
                "sagemaker:PutRecord",
            ],
            [arns.feature_group],
            sid="UseFeatureGroup",
        ),
        _allow(
            [
                "glue:BatchCreatePartition",
                "glue:CreateTable",
                "glue:GetDatabase",
                "glue:GetPartitions",
                "glue:GetTable",
                "glue:UpdateTable",
            ],
            feature_store_catalog(cfg),
            sid="FeatureStoreCatalog",
        ),
        _allow(
            [
                "athena:GetQueryExecution",
                "athena:GetQueryResults",
                "athena:StartQueryExecution",
                "athena:StopQueryExecution",
            ],
            [f"arn:aws:athena:{cfg.region}:{cfg.account}:workgroup/primary"],
            sid="QueryOfflineStore",
        ),
        _allow(
            ["iam:PassRole"],
            [cfg.sagemaker_execution_role_arn],
            {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            sid="PassSelfToJobs",
        ),
    ]


def pipeline_service(cfg: StageConfig, key_arn: str) -> list[iam.PolicyStatement]:
    """The env repository's CodePipeline: read the repository, run the builds, ask for approval."""
    arns = StageArns(cfg)
    verbs = [names.DEPLOY, names.VERIFY] + ([names.PROMOTE] if cfg.promote_to else [])
    statements = [
        *artifacts_read(arns),
        artifacts_write(arns, [""]),
        kms_use(key_arn),
        _allow(
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
        _allow(
            ["codebuild:BatchGetBuilds", "codebuild:StartBuild", "codebuild:StopBuild"],
            [arns.build_project(verb) for verb in verbs],
            sid="RunBuilds",
        ),
    ]
    if cfg.promote_to:
        statements.append(_allow(["sns:Publish"], [arns.approval_topic], sid="AskForApproval"))
    return statements


def deploy_build(cfg: StageConfig, key_arn: str) -> list[iam.PolicyStatement]:
    """`gitops deploy`: upload assets, run change sets as the deploy role, upsert SageMaker pipelines."""
    arns = StageArns(cfg)
    return [
        *build_basics(arns, names.DEPLOY, key_arn),
        artifacts_write(arns, ["assets/"]),
        _allow(
            ["s3:GetBucketLocation", "s3:ListBucket"],
            [arns.assets_bucket],
            sid="ListCdkAssets",
        ),
        _allow(["s3:GetObject", "s3:PutObject"], [f"{arns.assets_bucket}/*"], sid="UploadCdkAssets"),
        stacks_read(arns),
        _allow(
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
        _allow(
            ["cloudformation:GetTemplateSummary", "cloudformation:ValidateTemplate"],
            ["*"],
            _in_region(cfg),
            sid="ValidateTemplates",
        ),
        stage_parameters_read(arns),
        _allow(
            ["iam:PassRole"],
            [names.role_arn(cfg.account, names.deploy_role_name(cfg))],
            {"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}},
            sid="PassDeployRole",
        ),
        _allow(
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
        _allow(
            ["iam:PassRole"],
            [cfg.sagemaker_execution_role_arn],
            {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            sid="PassSageMakerRole",
        ),
        _allow(
            ["sagemaker:DescribeModelPackage", "sagemaker:DescribeModelPackageGroup"],
            [arns.model_package_group, arns.model_packages],
            sid="ReadModelRegistry",
        ),
        # ListModelPackages has no resource-level permissions.
        _allow(["sagemaker:ListModelPackages"], ["*"], _in_region(cfg), sid="FindApprovedModel"),
    ]


def verify_build(cfg: StageConfig, key_arn: str) -> list[iam.PolicyStatement]:
    """`gitops verify`: read what is deployed and send one smoke request to the endpoint."""
    arns = StageArns(cfg)
    return [
        *build_basics(arns, names.VERIFY, key_arn),
        stacks_read(arns),
        _allow(
            ["sagemaker:DescribePipeline", "sagemaker:ListPipelineExecutions"],
            [arns.sagemaker_pipelines],
            sid="ReadSageMakerPipelines",
        ),
        _allow(
            ["sagemaker:DescribeEndpoint", "sagemaker:InvokeEndpoint"],
            [arns.endpoint],
            sid="SmokeTestEndpoint",
        ),
        _allow(
            ["sagemaker:DescribeEndpointConfig"],
            [arns.sagemaker("endpoint-config/*")],
            sid="ReadEndpointConfig",
        ),
        _allow(["sagemaker:DescribeModelPackageGroup"], [arns.model_package_group], sid="ReadModelPackageGroup"),
    ]


def promote_build(cfg: StageConfig, target: StageConfig, key_arn: str) -> list[iam.PolicyStatement]:
    """`gitops promote`: check this execution's approval, then push to the target as its promotion role."""
    arns = StageArns(cfg)
    return [
        *build_basics(arns, names.PROMOTE, key_arn),
        _allow(
            ["codepipeline:GetPipelineExecution", "codepipeline:GetPipelineState", "codepipeline:ListActionExecutions"],
            [arns.release_pipeline],
            sid="ReadApproval",
        ),
        # GitPull: the stage's own history; GetFile: the release in the execution's source commit.
        _allow(["codecommit:GetFile", "codecommit:GitPull"], [arns.env_repository], sid="ReadOwnHistory"),
        _allow(
            ["sts:AssumeRole"],
            [names.role_arn(target.account, names.promotion_role_name(target))],
            sid="AssumeTargetPromotionRole",
        ),
    ]


def promotion(cfg: StageConfig, key_arn: str) -> list[iam.PolicyStatement]:
    """In a promotion target: push to this stage's env repository (main only), nothing else."""
    arns = StageArns(cfg)
    return [
        _allow(["codecommit:GitPull"], [arns.env_repository], sid="PullEnvRepository"),
        _allow(
            ["codecommit:GitPush"],
            [arns.env_repository],
            {"StringEqualsIfExists": {"codecommit:References": ["refs/heads/main"]}},
            sid="PushMainOnly",
        ),
        kms_use(key_arn, via_services=[f"codecommit.{cfg.region}.amazonaws.com"]),
    ]


def cloudformation_execution(cfg: StageConfig, key_arn: str) -> list[iam.PolicyStatement]:
    """What CloudFormation may do while deploying the stage's stacks (Base, Network, MLOps, Inference).

    Named resources are scoped to the stage's prefix; EC2, KMS key creation and Application Auto
    Scaling take generated ids, so those statements are held to the stage's account and region.
    """
    arns = StageArns(cfg)
    region = _in_region(cfg)
    prefix = cfg.prefix
    return [
        _allow(
            [
                "iam:AttachRolePolicy",
                "iam:CreateRole",
                "iam:DeleteRole",
                "iam:DeleteRolePolicy",
                "iam:DetachRolePolicy",
                "iam:GetRole",
                "iam:GetRolePolicy",
                "iam:ListAttachedRolePolicies",
                "iam:ListRolePolicies",
                "iam:PassRole",
                "iam:PutRolePolicy",
                "iam:TagRole",
                "iam:UntagRole",
                "iam:UpdateAssumeRolePolicy",
                "iam:UpdateRole",
                "iam:UpdateRoleDescription",
            ],
            [arns.stage_roles],
            sid="ManageStageRoles",
        ),
        _allow(
            ["iam:CreateServiceLinkedRole"],
            [f"arn:aws:iam::{cfg.account}:role/aws-service-role/*"],
            {
                "StringEquals": {
                    "iam:AWSServiceName": [
                        "sagemaker.application-autoscaling.amazonaws.com",
                        "sagemaker.amazonaws.com",
                    ]
                }
            },
            sid="ServiceLinkedRoles",
        ),
        # Actions without resource-level permissions (creations and listings), held to the region.
        _allow(
            [
                "autoscaling:DescribeTags",
                "cloudwatch:GetMetricData",
                "codecommit:ListRepositories",
                "kms:CreateKey",
                "kms:ListAliases",
                "logs:CreateLogDelivery",
                "logs:DeleteLogDelivery",
                "logs:DescribeIndexPolicies",
                "logs:DescribeResourcePolicies",
            ],
            ["*"],
            region,
            sid="CreateAndList",
        ),
        _allow(
            [
                *_KMS_USE,
                "kms:CreateGrant",
                "kms:DisableKey",
                "kms:DisableKeyRotation",
                "kms:EnableKey",
                "kms:EnableKeyRotation",
                "kms:GetKeyPolicy",
                "kms:GetKeyRotationStatus",
                "kms:ListResourceTags",
                "kms:PutKeyPolicy",
                "kms:ScheduleKeyDeletion",
                "kms:TagResource",
                "kms:UntagResource",
                "kms:UpdateKeyDescription",
            ],
            [arns.any_in_stage("kms", "key/")],
            sid="ManageStageKey",
        ),
        _allow(
            ["kms:CreateAlias", "kms:DeleteAlias", "kms:UpdateAlias"],
            [arns.any_in_stage("kms", f"alias/{prefix}"), arns.any_in_stage("kms", "key/")],
            sid="ManageStageKeyAlias",
        ),
        _allow(
            [
                "ec2:AssociateRouteTable",
                "ec2:AuthorizeSecurityGroupEgress",
                "ec2:AuthorizeSecurityGroupIngress",
                "ec2:CreateFlowLogs",
                "ec2:CreateNetworkAcl",
                "ec2:CreateNetworkAclEntry",
                "ec2:CreateRouteTable",
                "ec2:CreateSecurityGroup",
                "ec2:CreateSubnet",
                "ec2:CreateTags",
                "ec2:CreateVpc",
                "ec2:CreateVpcEndpoint",
                "ec2:DeleteFlowLogs",
                "ec2:DeleteNetworkAcl",
                "ec2:DeleteNetworkAclEntry",
                "ec2:DeleteRouteTable",
                "ec2:DeleteSecurityGroup",
                "ec2:DeleteSubnet",
                "ec2:DeleteTags",
                "ec2:DeleteVpc",
                "ec2:DeleteVpcEndpoints",
                *_EC2_DESCRIBE,
                "ec2:DisassociateRouteTable",
                "ec2:ModifySubnetAttribute",
                "ec2:ModifyVpcAttribute",
                "ec2:ModifyVpcEndpoint",
                "ec2:ModifyVpcTenancy",
                "ec2:ReplaceNetworkAclAssociation",
                "ec2:ReplaceNetworkAclEntry",
                "ec2:ReplaceRouteTableAssociation",
                "ec2:RevokeSecurityGroupEgress",
                "ec2:RevokeSecurityGroupIngress",
                "ec2:UpdateSecurityGroupRuleDescriptionsEgress",
                "ec2:UpdateSecurityGroupRuleDescriptionsIngress",
                "route53:AssociateVPCWithHostedZone",
            ],
            ["*"],
            region,
            sid="ManageStageNetwork",
        ),
        _allow(
            [
                "logs:AssociateKmsKey",
                "logs:CreateLogGroup",
                "logs:DeleteLogGroup",
                "logs:DeleteRetentionPolicy",
                "logs:DescribeLogGroups",
                "logs:DisassociateKmsKey",
                "logs:GetDataProtectionPolicy",
                "logs:ListTagsForResource",
                "logs:PutRetentionPolicy",
                "logs:TagResource",
                "logs:UntagResource",
            ],
            [arns.any_in_stage("logs", "log-group:")],
            sid="ManageLogGroups",
        ),
        _allow(
            [
                "s3:CreateBucket",
                "s3:DeleteBucket",
                "s3:DeleteBucketPolicy",
                "s3:GetAccelerateConfiguration",
                "s3:GetAnalyticsConfiguration",
                *_S3_BUCKET_READ,
                "s3:GetEncryptionConfiguration",
                "s3:GetIntelligentTieringConfiguration",
                "s3:GetInventoryConfiguration",
                "s3:GetLifecycleConfiguration",
                "s3:GetMetricsConfiguration",
                "s3:GetReplicationConfiguration",
                "s3:ListBucket",
                "s3:ListTagsForResource",
                *_S3_BUCKET_WRITE,
                "s3:PutEncryptionConfiguration",
                "s3:PutLifecycleConfiguration",
                "s3:TagResource",
                "s3:UntagResource",
            ],
            [f"arn:aws:s3:::{prefix}-*"],
            sid="ManageStageBuckets",
        ),
        _allow(["s3:GetObject", "s3:GetObjectVersion"], [f"{arns.assets_bucket}/*"], sid="ReadCdkAssets"),
        stage_parameters_read(arns),
        _allow(
            [
                "ssm:AddTagsToResource",
                "ssm:DeleteParameter",
                "ssm:ListTagsForResource",
                "ssm:PutParameter",
                "ssm:RemoveTagsFromResource",
            ],
            [arns.stage_parameters],
            sid="ManageStageParameters",
        ),
        _allow(
            [
                "sagemaker:AddTags",
                "sagemaker:CreateEndpoint",
                "sagemaker:CreateEndpointConfig",
                "sagemaker:CreateFeatureGroup",
                "sagemaker:CreateModel",
                "sagemaker:CreateModelPackageGroup",
                "sagemaker:DeleteEndpoint",
                "sagemaker:DeleteEndpointConfig",
                "sagemaker:DeleteFeatureGroup",
                "sagemaker:DeleteModel",
                "sagemaker:DeleteModelPackageGroup",
                "sagemaker:DeleteModelPackageGroupPolicy",
                "sagemaker:DeleteTags",
                "sagemaker:DescribeEndpoint",
                "sagemaker:DescribeEndpointConfig",
                "sagemaker:DescribeFeatureGroup",
                "sagemaker:DescribeModel",
                "sagemaker:DescribeModelPackage",
                "sagemaker:DescribeModelPackageGroup",
                "sagemaker:GetModelPackageGroupPolicy",
                "sagemaker:ListTags",
                "sagemaker:PutModelPackageGroupPolicy",
                "sagemaker:UpdateEndpoint",
                "sagemaker:UpdateFeatureGroup",
            ],
            [
                arns.model_package_group,
                arns.model_packages,
                arns.feature_group,
                arns.endpoint,
                arns.sagemaker("endpoint-config/*"),
                arns.sagemaker("model/*"),
            ],
            sid="ManageSageMakerResources",
        ),
        _allow(
            ["glue:CreateDatabase", "glue:CreateTable", "glue:GetDatabase", "glue:GetTable"],
            feature_store_catalog(cfg),
            sid="FeatureGroupCatalog",
        ),
        _allow(
            [
                "codecommit:CreateCommit",
                "codecommit:CreateRepository",
                "codecommit:DeleteRepository",
                "codecommit:GetRepository",
                "codecommit:GetRepositoryTriggers",
                "codecommit:ListTagsForResource",
                "codecommit:PutRepositoryTriggers",
                "codecommit:TagResource",
                "codecommit:UntagResource",
                "codecommit:UpdateRepositoryDescription",
                "codecommit:UpdateRepositoryEncryptionKey",
                "codecommit:UpdateRepositoryName",
            ],
            [arns.env_repository],
            sid="ManageEnvRepository",
        ),
        _allow(
            [
                "codebuild:BatchGetProjects",
                "codebuild:CreateProject",
                "codebuild:DeleteProject",
                "codebuild:UpdateProject",
            ],
            [arns.any_in_stage("codebuild", f"project/{prefix}-")],
            sid="ManageBuildProjects",
        ),
        _allow(
            [
                "codepipeline:CreatePipeline",
                "codepipeline:DeletePipeline",
                "codepipeline:DisableStageTransition",
                "codepipeline:EnableStageTransition",
                "codepipeline:GetPipeline",
                "codepipeline:GetPipelineState",
                "codepipeline:ListTagsForResource",
                "codepipeline:StartPipelineExecution",
                "codepipeline:TagResource",
                "codepipeline:UntagResource",
                "codepipeline:UpdatePipeline",
            ],
            [arns.release_pipeline],
            sid="ManageReleasePipeline",
        ),
        _allow(
            [
                "events:DeleteRule",
                "events:DescribeRule",
                "events:DisableRule",
                "events:EnableRule",
                "events:ListTagsForResource",
                "events:ListTargetsByRule",
                "events:PutRule",
                "events:PutTargets",
                "events:RemoveTargets",
                "events:TagResource",
                "events:UntagResource",
            ],
            [arns.any_in_stage("events", f"rule/{prefix}-")],
            sid="ManageSourceTrigger",
        ),
        _allow(
            [
                "sns:CreateTopic",
                "sns:DeleteTopic",
                "sns:GetDataProtectionPolicy",
                "sns:GetSubscriptionAttributes",
                "sns:GetTopicAttributes",
                "sns:ListSubscriptionsByTopic",
                "sns:ListTagsForResource",
                "sns:SetSubscriptionAttributes",
                "sns:SetTopicAttributes",
                "sns:Subscribe",
                "sns:TagResource",
                "sns:Unsubscribe",
                "sns:UntagResource",
            ],
            [arns.any_in_stage("sns", f"{prefix}-")],
            sid="ManageTopics",
        ),
        _allow(
            [
                "cloudwatch:DeleteAlarms",
                "cloudwatch:DescribeAlarms",
                "cloudwatch:ListTagsForResource",
                "cloudwatch:PutMetricAlarm",
                "cloudwatch:TagResource",
                "cloudwatch:UntagResource",
            ],
            [arns.any_in_stage("cloudwatch", f"alarm:{cfg.endpoint_name}-")],
            sid="ManageEndpointAlarms",
        ),
        # Scalable targets and policies have generated ids; Application Auto Scaling's own
        # service-linked role creates the target-tracking alarms.
        _allow(
            [
                "application-autoscaling:DeleteScalingPolicy",
                "application-autoscaling:DeleteScheduledAction",
                "application-autoscaling:DeregisterScalableTarget",
                "application-autoscaling:DescribeScalableTargets",
                "application-autoscaling:DescribeScalingPolicies",
                "application-autoscaling:DescribeScheduledActions",
                "application-autoscaling:ListTagsForResource",
                "application-autoscaling:PutScalingPolicy",
                "application-autoscaling:PutScheduledAction",
                "application-autoscaling:RegisterScalableTarget",
                "application-autoscaling:TagResource",
                "application-autoscaling:UntagResource",
            ],
            ["*"],
            region,
            sid="ManageEndpointScaling",
        ),
    ]
