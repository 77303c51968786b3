"""What every stack of a stage is built from, and what each owes the CloudFormation execution role."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from gitops.config import StageConfig
from infra.roles.arns import StageArns


@dataclass(frozen=True)
class StageInputs:
    """The stage a stack belongs to, and what it may need of the rest of the repository."""

    cfg: StageConfig
    root: Path  # the repository (buildspecs, seed directories)
    target: StageConfig | None  # the stage this one promotes to
    promoted_from: tuple[StageConfig, ...]  # the stages that promote to this one
    stack_classes: tuple[type[StageStack], ...]  # all of the stage's stacks: the execution role serves each


class StageStack(Stack):
    """A stack of a stage; a subclass builds its resources and lists what deploying them needs."""

    def __init__(self, scope: Construct, id: str, *, inputs: StageInputs, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)

    @staticmethod
    def deploy_statements(arns: StageArns) -> list[iam.PolicyStatement]:
        """What CloudFormation's handlers call to create, update and delete this stack's resources."""
        raise NotImplementedError
