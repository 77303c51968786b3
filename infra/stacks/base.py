"""Base stack: the stage's customer-managed KMS key and its least-privilege IAM roles."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from gitops.config import StageConfig, kms_alias_name
from infra import names
from infra.components import iam_policies, parameters


class BaseStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        cfg: StageConfig,
        target: StageConfig | None,
        promoted_from: list[StageConfig],
        **kwargs,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        self.key = _stage_key(self, cfg)
        key_arn = self.key.key_arn
        parameters.publish(self, cfg, names.KEY_ARN, key_arn, "ARN of the stage's customer-managed KMS key")

        _role(
            self,
            "SageMakerExecutionRole",
            name=cfg.sagemaker_execution_role_name,
            principal=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="SageMaker pipelines, jobs, feature group and endpoint of the stage",
            statements=iam_policies.sagemaker_execution(cfg, key_arn),
        )
        _role(
            self,
            "PipelineRole",
            name=names.pipeline_role_name(cfg),
            principal=iam.ServicePrincipal("codepipeline.amazonaws.com"),
            description="The env repository's release pipeline",
            statements=iam_policies.pipeline_service(cfg, key_arn),
        )
        _role(
            self,
            "DeployRole",
            name=names.deploy_role_name(cfg),
            principal=iam.ServicePrincipal("cloudformation.amazonaws.com"),
            description="CloudFormation execution role for the stage's stacks",
            statements=iam_policies.cloudformation_execution(cfg, key_arn),
        )
        build_policies = {
            names.DEPLOY: iam_policies.deploy_build(cfg, key_arn),
            names.VERIFY: iam_policies.verify_build(cfg, key_arn),
        }
        if target is not None:
            build_policies[names.PROMOTE] = iam_policies.promote_build(cfg, target, key_arn)
        for verb, statements in build_policies.items():
            _role(
                self,
                f"{verb.capitalize()}BuildRole",
                name=names.build_role_name(cfg, verb),
                principal=iam.ServicePrincipal(
                    "codebuild.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": cfg.account}}
                ),
                description=f"CodeBuild: gitops {verb} --stage {cfg.stage}",
                statements=statements,
            )
        if promoted_from:
            _role(
                self,
                "PromotionRole",
                name=names.promotion_role_name(cfg),
                principal=_promote_builds_of(promoted_from),
                description=f"Push releases promoted from {', '.join(s.stage for s in promoted_from)}",
                statements=iam_policies.promotion(cfg, key_arn),
                max_session=Duration.hours(1),
            )


def _stage_key(scope: Construct, cfg: StageConfig) -> kms.Key:
    key = kms.Key(
        scope,
        "StageKey",
        alias=kms_alias_name(cfg),
        description=f"{cfg.prefix}: artifacts, logs, repositories, topics, feature store and endpoint",
        enable_key_rotation=True,
        pending_window=Duration.days(30 if cfg.retain_data else 7),
        removal_policy=RemovalPolicy.RETAIN if cfg.retain_data else RemovalPolicy.DESTROY,
    )
    # Services that encrypt with the key as themselves rather than as a caller's role.
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="CloudWatchLogsOfTheStage",
            principals=[iam.ServicePrincipal(f"logs.{cfg.region}.amazonaws.com")],
            actions=["kms:Decrypt*", "kms:Describe*", "kms:Encrypt*", "kms:GenerateDataKey*", "kms:ReEncrypt*"],
            resources=["*"],
            conditions={
                "ArnLike": {
                    "kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:{cfg.region}:{cfg.account}:log-group:*"
                }
            },
        )
    )
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="CloudWatchAlarmsToEncryptedTopics",
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["kms:Decrypt", "kms:GenerateDataKey*"],
            resources=["*"],
            conditions={"StringEquals": {"aws:SourceAccount": cfg.account}},
        )
    )
    return key


def _promote_builds_of(sources: list[StageConfig]) -> iam.IPrincipal:
    """The source stages' promote builds, trusted by ARN condition (they need not exist yet)."""
    return iam.CompositePrincipal(
        *(
            iam.AccountPrincipal(source.account).with_conditions(
                {
                    "ArnEquals": {
                        "aws:PrincipalArn": names.role_arn(source.account, names.build_role_name(source, names.PROMOTE))
                    }
                }
            )
            for source in sources
        )
    )


def _role(
    scope: Construct,
    id: str,
    *,
    name: str,
    principal: iam.IPrincipal,
    description: str,
    statements: list[iam.PolicyStatement],
    max_session: Duration | None = None,
) -> iam.Role:
    return iam.Role(
        scope,
        id,
        role_name=name,
        assumed_by=principal,
        description=description,
        inline_policies={"least-privilege": iam.PolicyDocument(statements=statements)},
        max_session_duration=max_session,
    )
