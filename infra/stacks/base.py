"""Base stack: the stage's customer-managed KMS key and its least-privilege IAM roles (one module each)."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from gitops.config import StageConfig, kms_alias_name
from infra import names
from infra.components import parameters
from infra.roles import (
    cloudformation_execution,
    deploy_build,
    env_repository_guard,
    promote_build,
    promotion,
    release_pipeline,
    sagemaker_execution,
    verify_build,
)
from infra.roles import deploy_statements as deploy
from infra.roles.arns import StageArns
from infra.roles.statements import allow
from infra.stacks.stage_stack import StageInputs, StageStack


class BaseStack(StageStack):
    def __init__(self, scope: Construct, id: str, *, inputs: StageInputs, **kwargs) -> None:
        super().__init__(scope, id, inputs=inputs, **kwargs)
        cfg = inputs.cfg
        self.key = _stage_key(self, cfg)
        key_arn = self.key.key_arn
        parameters.publish(self, cfg, names.KEY_ARN, key_arn, "ARN of the stage's customer-managed KMS key")
        # Attached to every role of the stage by env_repository_guard.AttachEnvRepositoryGuard (app.py).
        env_repository_guard.create(self, cfg, promoted_to=bool(inputs.promoted_from))

        sagemaker_execution.create(self, cfg, key_arn)
        release_pipeline.create(self, cfg, key_arn)
        cloudformation_execution.create(self, cfg, inputs.stack_classes)
        deploy_build.create(self, cfg, key_arn)
        verify_build.create(self, cfg, key_arn)
        if inputs.target is not None:
            promote_build.create(self, cfg, inputs.target, key_arn)
        if inputs.promoted_from:
            promotion.create(self, cfg, list(inputs.promoted_from), key_arn)

    @staticmethod
    def deploy_statements(arns: StageArns) -> list[iam.PolicyStatement]:
        return [
            deploy.manage_stage_roles(arns),
            deploy.create_and_list(arns, ["kms:CreateKey", "kms:ListAliases"]),
            deploy.stage_key(
                arns,
                [
                    "kms:DescribeKey",
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
            ),
            allow(
                ["kms:CreateAlias", "kms:DeleteAlias", "kms:UpdateAlias"],
                [arns.any_in_stage("kms", f"alias/{arns.cfg.prefix}"), arns.any_in_stage("kms", "key/")],
                sid="ManageStageKeyAlias",
            ),
            deploy.published_parameters(arns),
            allow(
                [
                    "iam:CreatePolicy",
                    "iam:CreatePolicyVersion",
                    "iam:DeletePolicy",
                    "iam:DeletePolicyVersion",
                    "iam:GetPolicy",
                    "iam:GetPolicyVersion",
                    "iam:ListEntitiesForPolicy",
                    "iam:ListPolicyVersions",
                ],
                [env_repository_guard.policy_arn(arns.cfg)],
                sid="ManageStagePolicies",
            ),
        ]


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
    # AWS Budgets publishes the stage's budget alerts to the app's encrypted topic (App stack).
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="BudgetAlertsToEncryptedTopics",
            principals=[iam.ServicePrincipal("budgets.amazonaws.com")],
            actions=["kms:Decrypt", "kms:GenerateDataKey*"],
            resources=["*"],
            conditions={"StringEquals": {"aws:SourceAccount": cfg.account}},
        )
    )
    return key
