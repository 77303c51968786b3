"""The CloudFormation execution role (<prefix>-cfn-exec): what CloudFormation may do deploying each stack.

Its statements come from the stacks it deploys (each stack class's deploy_statements), merged by
Sid (infra.roles.deploy_statements), plus what every stack of a stage needs alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from aws_cdk import aws_iam as iam
from constructs import Construct

from gitops.config import StageConfig
from infra import names
from infra.roles.arns import StageArns
from infra.roles.deploy_statements import merge
from infra.roles.role import stage_role
from infra.roles.statements import stage_parameters_read

# The order the role's policy lists its statements in, as deployed: a reordering alone would be a
# template change with no change of permission. A Sid not named here follows, in stack order.
STATEMENT_ORDER = (
    "ManageStageRoles",
    "ManageStagePolicies",
    "ServiceLinkedRoles",
    "CreateAndList",
    "ManageStageKey",
    "ManageStageKeyAlias",
    "ManageStageNetwork",
    "ManageLogGroups",
    "ManageStageBuckets",
    "ReadCdkAssets",
    "ReadStageParameters",
    "ManageStageParameters",
    "ManageSageMakerResources",
    "FeatureGroupCatalog",
    "ManageEnvRepository",
    "ManageBuildProjects",
    "ManageReleasePipeline",
    "ManageSourceTrigger",
    "ManageTopics",
    "ManageEndpointAlarms",
    "ManageEndpointScaling",
)


class DeployedStack(Protocol):
    """A stack class that says what CloudFormation needs to deploy it."""

    @staticmethod
    def deploy_statements(arns: StageArns) -> list[iam.PolicyStatement]: ...


def create(scope: Construct, cfg: StageConfig, stacks: Iterable[type[DeployedStack]]) -> iam.Role:
    return stage_role(
        scope,
        "DeployRole",
        name=names.deploy_role_name(cfg),
        principal=iam.ServicePrincipal("cloudformation.amazonaws.com"),
        description="CloudFormation execution role for the stage's stacks",
        statements=statements(cfg, stacks),
    )


def statements(cfg: StageConfig, stacks: Iterable[type[DeployedStack]]) -> list[iam.PolicyStatement]:
    arns = StageArns(cfg)
    # Every stack's CheckBootstrapVersion rule reads the bootstrap version; stacks read each other's
    # values through the stage's SSM parameters.
    common = [stage_parameters_read(arns)]
    return merge([*common, *(s for stack in stacks for s in stack.deploy_statements(arns))], STATEMENT_ORDER)
