"""MLOps stack: artifact bucket, model registry, feature group, env repository, builds and release pipeline."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import RemovalPolicy
from aws_cdk import aws_athena as athena
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codecommit as codecommit
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from gitops.config import StageConfig
from infra import names
from infra.components import buckets, parameters, pipeline_actions
from infra.components.build_projects import verb_project
from infra.components.buildspecs import load_buildspec
from infra.components.topics import encrypted_topic
from infra.roles import deploy_statements as deploy
from infra.roles.arns import StageArns
from infra.roles.statements import KMS_USE, allow
from infra.stacks.stage_stack import StageInputs, StageStack
from pipeline_defs.features import EVENT_TIME, FEATURES, RECORD_IDENTIFIER

FEATURE_STORE_PREFIX = "feature-store"

# What CloudFormation's handlers call for the stage's buckets and their policies (the pinned
# cfn-lint provider schemas list them), named one by one rather than as Get*/Put* wildcards.
BUCKET_MANAGEMENT = [
    "s3:CreateBucket",
    "s3:DeleteBucket",
    "s3:DeleteBucketPolicy",
    "s3:GetAccelerateConfiguration",
    "s3:GetAnalyticsConfiguration",
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
    "s3:GetEncryptionConfiguration",
    "s3:GetIntelligentTieringConfiguration",
    "s3:GetInventoryConfiguration",
    "s3:GetLifecycleConfiguration",
    "s3:GetMetricsConfiguration",
    "s3:GetReplicationConfiguration",
    "s3:ListBucket",
    "s3:ListTagsForResource",
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
    "s3:PutEncryptionConfiguration",
    "s3:PutLifecycleConfiguration",
    "s3:TagResource",
    "s3:UntagResource",
]


def seed_directory(cfg: StageConfig) -> str:
    """The env repository's initial content: seed_repo/ where the stage promotes onward, else prod_repo/."""
    return "seed_repo" if cfg.promote_to else "prod_repo"


class MLOpsStack(StageStack):
    def __init__(self, scope: Construct, id: str, *, inputs: StageInputs, **kwargs) -> None:
        super().__init__(scope, id, inputs=inputs, **kwargs)
        cfg, target, root = inputs.cfg, inputs.target, inputs.root
        key = parameters.stage_key(self, cfg)
        removal = RemovalPolicy.RETAIN if cfg.retain_data else RemovalPolicy.DESTROY

        access_logs = buckets.access_logs_bucket(
            self,
            "AccessLogsBucket",
            name=names.access_logs_bucket_name(cfg),
            retain=cfg.retain_data,
            expire_days=cfg.log_retention_days,
        )
        self.artifacts = buckets.artifact_bucket(
            self,
            "ArtifactBucket",
            name=cfg.artifact_bucket_name,
            key=key,
            access_logs=access_logs,
            retain=cfg.retain_data,
        )

        model_group = sagemaker.CfnModelPackageGroup(
            self,
            "ModelPackageGroup",
            model_package_group_name=cfg.model_package_group_name,
            model_package_group_description=f"Models trained and evaluated in {cfg.stage}",
        )
        model_group.apply_removal_policy(removal)
        _feature_group(self, cfg, key, self.artifacts)
        _athena_workgroup(self, cfg, key)
        if not inputs.promoted_from:  # the training stage: models are registered and approved here
            _model_approved_rule(self, cfg)

        repository = codecommit.Repository(
            self,
            "EnvRepository",
            repository_name=cfg.env_repository_name,
            description=f"Environment repository of {cfg.stage}: release/ is what runs; history is deploy history",
            code=codecommit.Code.from_directory(str(root / seed_directory(cfg)), pipeline_actions.BRANCH),
            kms_key=key,
        )
        repository.apply_removal_policy(removal)

        self.pipeline = _release_pipeline(self, cfg, target, root, key, self.artifacts, repository)

    @staticmethod
    def deploy_statements(arns: StageArns) -> list[iam.PolicyStatement]:
        return [
            deploy.manage_stage_roles(arns),  # the source trigger's role
            deploy.pass_stage_roles(arns),  # the pipeline, the trigger, the feature group act as roles
            deploy.create_and_list(arns, ["codecommit:ListRepositories"]),
            # The env repository's seed commit and the feature group's stores encrypt with the stage key.
            deploy.stage_key(arns, [*KMS_USE, "kms:CreateGrant"]),
            *deploy.log_groups(arns),
            allow(BUCKET_MANAGEMENT, [f"arn:aws:s3:::{arns.cfg.prefix}-*"], sid="ManageStageBuckets"),
            # The env repository's seed archive.
            allow(["s3:GetObject", "s3:GetObjectVersion"], [f"{arns.assets_bucket}/*"], sid="ReadCdkAssets"),
            allow(
                [
                    "athena:CreateWorkGroup",
                    "athena:DeleteWorkGroup",
                    "athena:GetWorkGroup",
                    "athena:ListTagsForResource",
                    "athena:TagResource",
                    "athena:UntagResource",
                    "athena:UpdateWorkGroup",
                ],
                [arns.athena_workgroup],
                sid="ManageTrainingWorkGroup",
            ),
            # CloudFormation's workgroup handler checks the results location it is given.
            allow(
                [
                    "s3:AbortMultipartUpload",
                    "s3:GetObject",
                    "s3:ListBucketMultipartUploads",
                    "s3:ListMultipartUploadParts",
                    "s3:PutObject",
                ],
                [arns.artifact_bucket, arns.artifact_objects("athena-results/")],
                sid="TrainingWorkGroupResults",
            ),
            deploy.sagemaker_resources(
                [arns.model_package_group, arns.model_packages, arns.feature_group],
                [
                    "sagemaker:AddTags",
                    "sagemaker:CreateFeatureGroup",
                    "sagemaker:CreateModelPackageGroup",
                    "sagemaker:DeleteFeatureGroup",
                    "sagemaker:DeleteModelPackageGroup",
                    "sagemaker:DeleteModelPackageGroupPolicy",
                    "sagemaker:DeleteTags",
                    "sagemaker:DescribeFeatureGroup",
                    "sagemaker:DescribeModelPackage",
                    "sagemaker:DescribeModelPackageGroup",
                    "sagemaker:GetModelPackageGroupPolicy",
                    "sagemaker:ListTags",
                    "sagemaker:PutModelPackageGroupPolicy",
                    "sagemaker:UpdateFeatureGroup",
                ],
            ),
            allow(
                ["glue:CreateDatabase", "glue:CreateTable", "glue:GetDatabase", "glue:GetTable"],
                arns.feature_store_catalog,
                sid="FeatureGroupCatalog",
            ),
            allow(
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
            allow(
                [
                    "codebuild:BatchGetProjects",
                    "codebuild:CreateProject",
                    "codebuild:DeleteProject",
                    "codebuild:UpdateProject",
                ],
                [arns.any_in_stage("codebuild", f"project/{arns.cfg.prefix}-")],
                sid="ManageBuildProjects",
            ),
            allow(
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
            allow(
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
                [arns.any_in_stage("events", f"rule/{arns.cfg.prefix}-")],
                sid="ManageSourceTrigger",
            ),
            deploy.topics(arns),  # release approvals, where the stage promotes
        ]


def _feature_group(scope: Construct, cfg: StageConfig, key: kms.IKey, bucket: s3.IBucket) -> None:
    """The customer feature group, its schema taken from pipeline_defs.features (declared once)."""
    group = sagemaker.CfnFeatureGroup(
        scope,
        "FeatureGroup",
        feature_group_name=cfg.feature_group_name,
        description="Customer churn features (schema: pipeline_defs/features.py)",
        record_identifier_feature_name=RECORD_IDENTIFIER,
        event_time_feature_name=EVENT_TIME,
        feature_definitions=[
            sagemaker.CfnFeatureGroup.FeatureDefinitionProperty(feature_name=f.name, feature_type=f.feature_type)
            for f in FEATURES
        ],
        online_store_config={"EnableOnlineStore": True, "SecurityConfig": {"KmsKeyId": key.key_arn}},
        offline_store_config={
            "S3StorageConfig": {
                "S3Uri": f"s3://{cfg.artifact_bucket_name}/{FEATURE_STORE_PREFIX}",
                "KmsKeyId": key.key_arn,
            },
            "DisableGlueTableCreation": False,
            # A fixed table name: the training pipeline's Athena query names it (features.offline_store_query).
            "DataCatalogConfig": {
                "Catalog": "AwsDataCatalog",
                "Database": cfg.offline_store_database,
                "TableName": cfg.offline_store_table,
            },
        },
        role_arn=cfg.sagemaker_execution_role_arn,
    )
    group.node.add_dependency(bucket)
    group.apply_removal_policy(RemovalPolicy.RETAIN if cfg.retain_data else RemovalPolicy.DESTROY)


def _athena_workgroup(scope: Construct, cfg: StageConfig, key: kms.IKey) -> athena.CfnWorkGroup:
    """The training pipeline's Athena workgroup: results in the artifact bucket, SSE-KMS (stage key), enforced."""
    return athena.CfnWorkGroup(
        scope,
        "TrainingWorkGroup",
        name=cfg.athena_workgroup_name,
        description="The training pipeline's offline-store queries (features.offline_store_query)",
        recursive_delete_option=not cfg.retain_data,
        work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
            enforce_work_group_configuration=True,
            publish_cloud_watch_metrics_enabled=True,
            result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                output_location=cfg.athena_results_uri,
                encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                    encryption_option="SSE_KMS", kms_key=key.key_arn
                ),
            ),
        ),
    )


MODEL_PROPOSE_PROJECT = "model-propose"  # <prefix>-model-propose: the source repository's build (buildspecs/)


def _model_approved_rule(scope: Construct, cfg: StageConfig) -> events.Rule:
    """Approved in the registry -> `gitops model propose` for that package (a PR of the pin, never a deploy)."""
    project = codebuild.Project.from_project_name(scope, "ModelProposeProject", f"{cfg.prefix}-{MODEL_PROPOSE_PROJECT}")
    return events.Rule(
        scope,
        "ModelApprovedRule",
        rule_name=f"{cfg.prefix}-model-approved",
        description="A model package Approved in the stage's group starts the propose build",
        event_pattern=events.EventPattern(
            source=["aws.sagemaker"],
            detail_type=["SageMaker Model Package State Change"],
            detail={
                "ModelPackageGroupName": [cfg.model_package_group_name],
                "ModelApprovalStatus": ["Approved"],  # Rejected and PendingManualApproval propose nothing
            },
        ),
        targets=[
            targets.CodeBuildProject(
                project,
                event=events.RuleTargetInput.from_object(
                    {
                        "environmentVariablesOverride": [
                            {
                                "name": "PACKAGE_ARN",
                                "type": "PLAINTEXT",
                                "value": events.EventField.from_path("$.detail.ModelPackageArn"),
                            }
                        ]
                    }
                ),
            )
        ],
    )


def _release_pipeline(
    scope: Construct,
    cfg: StageConfig,
    target: StageConfig | None,
    root: Path,
    key: kms.IKey,
    artifacts: s3.IBucket,
    repository: codecommit.IRepository,
) -> codepipeline.Pipeline:
    """Source -> Deploy -> Verify, and where the stage promotes: -> Approve -> Promote."""

    def project(verb: str, environment: dict[str, str], description: str):
        return verb_project(
            scope,
            f"{verb.capitalize()}Project",
            cfg=cfg,
            verb=verb,
            build_spec=load_buildspec(root, verb),
            key=key,
            cache_bucket=artifacts,
            environment={"STAGE": cfg.stage, "PIPELINE_NAME": names.release_pipeline_name(cfg), **environment},
            description=description,
        )

    source = codepipeline.Artifact("EnvRepository")
    stages = [
        codepipeline.StageProps(
            stage_name="Source", actions=[pipeline_actions.env_repository_source(repository, source)]
        ),
        codepipeline.StageProps(
            stage_name="Deploy",
            actions=[
                pipeline_actions.verb_build(
                    "Deploy", project(names.DEPLOY, {}, f"gitops deploy --stage {cfg.stage}"), source
                )
            ],
        ),
        codepipeline.StageProps(
            stage_name="Verify",
            actions=[
                pipeline_actions.verb_build(
                    "Verify",
                    project(names.VERIFY, {}, f"gitops verify --stage {cfg.stage}"),
                    source,
                    pipeline_actions.VERIFY_NAMESPACE,
                )
            ],
        ),
    ]
    if target is not None:
        topic = encrypted_topic(
            scope,
            "ApprovalTopic",
            name=names.approval_topic_name(cfg),
            display_name=f"{cfg.prefix} release approvals",
            key=key,
            email=cfg.approval_email,
        )
        promote = project(
            names.PROMOTE,
            {
                "TARGET_STAGE": target.stage,
                "TARGET_ACCOUNT": target.account,
                "TARGET_REGION": target.region,
                "TARGET_REPOSITORY": target.env_repository_name,
                "TARGET_ROLE_ARN": names.role_arn(target.account, names.promotion_role_name(target)),
            },
            f"gitops promote --from {cfg.stage} --to {target.stage}",
        )
        stages += [
            codepipeline.StageProps(stage_name="Approve", actions=[pipeline_actions.release_approval(cfg, topic)]),
            codepipeline.StageProps(
                stage_name="Promote", actions=[pipeline_actions.verb_build("Promote", promote, source)]
            ),
        ]
    return codepipeline.Pipeline(
        scope,
        "ReleasePipeline",
        pipeline_name=names.release_pipeline_name(cfg),
        pipeline_type=codepipeline.PipelineType.V2,
        # One release at a time, in order: a release waiting for approval is the one deployed in dev.
        execution_mode=codepipeline.ExecutionMode.QUEUED,
        role=iam.Role.from_role_name(scope, "PipelineRole", names.pipeline_role_name(cfg), mutable=False),
        use_pipeline_role_for_actions=True,
        artifact_bucket=artifacts,
        cross_account_keys=False,
        restart_execution_on_update=False,
        stages=stages,
    )
