"""The env repository takes writes from its writer only: an explicit Deny on every role of the stage.

CodeCommit has no resource policy, so the rule lives in identity policies: one customer-managed
policy (in Base) denies every write to the stage's env repository to any principal whose ARN is
not the writer's, and an aspect attaches it to every IAM role the stage's stacks create (today's
and any a later stack adds). An explicit Deny wins over any Allow a role is given later. The
writer is the publish role where releases are published (a stage no other promotes to) and the
promotion role where they are promoted. Principals created outside these stacks (people, other
roles) are outside an account's identity policies' reach: attach the same document to them, or
as a service control policy of the organization (infra/README.md).
"""

from __future__ import annotations

import jsii
from aws_cdk import IAspect, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct, IConstruct

from gitops.config import StageConfig
from infra import names
from infra.roles.arns import StageArns

GUARD_ID = "EnvRepositoryGuard"
# Every CodeCommit action that changes the repository's branches or their content.
CONTENT_WRITES = [
    "codecommit:CreateBranch",
    "codecommit:CreateUnreferencedMergeCommit",
    "codecommit:DeleteBranch",
    "codecommit:DeleteFile",
    "codecommit:GitPush",
    "codecommit:MergeBranchesByFastForward",
    "codecommit:MergeBranchesBySquash",
    "codecommit:MergeBranchesByThreeWay",
    "codecommit:MergePullRequestByFastForward",
    "codecommit:MergePullRequestBySquash",
    "codecommit:MergePullRequestByThreeWay",
    "codecommit:PutFile",
    "codecommit:UpdateDefaultBranch",
]


def writer_arn(cfg: StageConfig, promoted_to: bool) -> str:
    """The one role that moves the stage's env repository: promotion where promoted to, else publish."""
    return names.role_arn(cfg.account, names.promotion_role_name(cfg) if promoted_to else names.publish_role_name(cfg))


def policy_arn(cfg: StageConfig) -> str:
    return f"arn:aws:iam::{cfg.account}:policy/{names.env_repository_guard_name(cfg)}"


def statements(cfg: StageConfig, promoted_to: bool) -> list[iam.PolicyStatement]:
    arns = StageArns(cfg)
    return [
        iam.PolicyStatement(
            sid="OnlyItsWriterWritesTheEnvRepository",
            effect=iam.Effect.DENY,
            actions=CONTENT_WRITES,
            resources=[arns.env_repository],
            conditions={"ArnNotEquals": {"aws:PrincipalArn": writer_arn(cfg, promoted_to)}},
        ),
        # CloudFormation commits the seed directory once, as it creates the repository (its Code
        # property is read on creation only); nobody else commits through the API.
        iam.PolicyStatement(
            sid="OnlyCloudFormationSeedsTheEnvRepository",
            effect=iam.Effect.DENY,
            actions=["codecommit:CreateCommit"],
            resources=[arns.env_repository],
            conditions={"ArnNotEquals": {"aws:PrincipalArn": arns.role(names.deploy_role_name(cfg))}},
        ),
    ]


def create(scope: Construct, cfg: StageConfig, promoted_to: bool) -> iam.ManagedPolicy:
    return iam.ManagedPolicy(
        scope,
        GUARD_ID,
        managed_policy_name=names.env_repository_guard_name(cfg),
        description=f"Only {writer_arn(cfg, promoted_to).rsplit('/', 1)[1]} writes {cfg.env_repository_name}",
        statements=statements(cfg, promoted_to),
    )


@jsii.implements(IAspect)
class AttachEnvRepositoryGuard:
    """Attaches the guard to every IAM role in the stage: by reference in Base, by its fixed ARN elsewhere."""

    def __init__(self, cfg: StageConfig) -> None:
        self._cfg = cfg

    def visit(self, node: IConstruct) -> None:
        if isinstance(node, iam.Role):
            node.add_managed_policy(self._guard_of(Stack.of(node)))

    def _guard_of(self, stack: Stack) -> iam.IManagedPolicy:
        found = stack.node.try_find_child(GUARD_ID)
        if found is None:
            found = iam.ManagedPolicy.from_managed_policy_arn(stack, GUARD_ID, policy_arn(self._cfg))
        return found
