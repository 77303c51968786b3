"""Statements the CloudFormation execution role needs, as the stacks contribute them, and their merge.

Each stack of a stage says what CloudFormation needs to deploy it (its deploy_statements). A
statement is named by its Sid; where several stacks need the same kind of permission (their log
groups, their topics, the stage key) they contribute statements with the same Sid, and the role
gets one statement of the union. The blocks below are those shared kinds, written once.
"""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import aws_iam as iam

from gitops.errors import SynthError
from infra.roles.arns import StageArns
from infra.roles.statements import allow, in_region

_ROLE_MANAGEMENT = [
    "iam:AttachRolePolicy",
    "iam:CreateRole",
    "iam:DeleteRole",
    "iam:DeleteRolePolicy",
    "iam:DetachRolePolicy",
    "iam:GetRole",
    "iam:GetRolePolicy",
    "iam:ListAttachedRolePolicies",
    "iam:ListRolePolicies",
    "iam:PutRolePolicy",
    "iam:TagRole",
    "iam:UntagRole",
    "iam:UpdateAssumeRolePolicy",
    "iam:UpdateRole",
    "iam:UpdateRoleDescription",
]


def manage_stage_roles(arns: StageArns) -> iam.PolicyStatement:
    """Roles the stack creates (named <prefix>-..., or generated from the stack name)."""
    return allow(_ROLE_MANAGEMENT, [arns.stage_roles], sid="ManageStageRoles")


def pass_stage_roles(arns: StageArns) -> iam.PolicyStatement:
    """Resources of the stack that act as one of the stage's roles."""
    return allow(["iam:GetRole", "iam:PassRole"], [arns.stage_roles], sid="ManageStageRoles")


def create_and_list(arns: StageArns, actions: list[str]) -> iam.PolicyStatement:
    """Actions without resource-level permissions (creations and listings), held to the region."""
    return allow(actions, ["*"], in_region(arns.cfg), sid="CreateAndList")


def stage_key(arns: StageArns, actions: list[str]) -> iam.PolicyStatement:
    """The stage's customer-managed key: a generated id, so any key of the account and region."""
    return allow(actions, [arns.any_in_stage("kms", "key/")], sid="ManageStageKey")


def log_groups(arns: StageArns) -> list[iam.PolicyStatement]:
    """KMS-encrypted log groups of infra.components.log_groups."""
    return [
        create_and_list(
            arns, ["logs:CreateLogDelivery", "logs:DescribeIndexPolicies", "logs:DescribeResourcePolicies"]
        ),
        allow(
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
    ]


def published_parameters(arns: StageArns) -> iam.PolicyStatement:
    """SSM parameters of infra.components.parameters.publish, under the stage's path."""
    return allow(
        [
            "ssm:AddTagsToResource",
            "ssm:DeleteParameter",
            "ssm:ListTagsForResource",
            "ssm:PutParameter",
            "ssm:RemoveTagsFromResource",
        ],
        [arns.stage_parameters],
        sid="ManageStageParameters",
    )


def topics(arns: StageArns) -> iam.PolicyStatement:
    """Encrypted topics of infra.components.topics, with their policy and optional email subscription."""
    return allow(
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
        [arns.any_in_stage("sns", f"{arns.cfg.prefix}-")],
        sid="ManageTopics",
    )


def sagemaker_resources(resources: list[str], actions: list[str]) -> iam.PolicyStatement:
    return allow(actions, resources, sid="ManageSageMakerResources")


def merge(contributions: Iterable[iam.PolicyStatement], order: tuple[str, ...]) -> list[iam.PolicyStatement]:
    """One statement per Sid: the union of the contributed actions and resources, in the given order.

    Contributions of one Sid must agree on effect and conditions: a merge must never widen a
    condition one stack relies on. Sids not in order follow, in the order first contributed.
    """
    merged: dict[str, dict] = {}
    for statement in contributions:
        body = statement.to_statement_json()
        sid = body.get("Sid")
        if not sid:
            raise SynthError(f"a deploy statement without a Sid ({sorted(statement.actions)}): name what it is for")
        seen = merged.setdefault(sid, {"effect": statement.effect, "conditions": body.get("Condition")})
        if (seen["effect"], seen["conditions"]) != (statement.effect, body.get("Condition")):
            raise SynthError(f"deploy statement {sid}: stacks contribute it with different effects or conditions")
        seen.setdefault("actions", set()).update(statement.actions)
        resources = seen.setdefault("resources", [])
        resources += [r for r in statement.resources if r not in resources]
    rank = {sid: index for index, sid in enumerate(order)}
    sids = sorted(merged, key=lambda sid: rank.get(sid, len(order)))
    return [
        iam.PolicyStatement(
            sid=sid,
            effect=merged[sid]["effect"],
            actions=sorted(merged[sid]["actions"]),
            resources=merged[sid]["resources"],
            conditions=merged[sid]["conditions"],
        )
        for sid in sids
    ]


# What CloudFormation's handlers call for target-tracking scaling (the endpoint's and the app service's).
AUTOSCALING_ACTIONS = [
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
]
