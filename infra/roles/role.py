"""A role of the stage: fixed name, one trust, one inline least-privilege policy."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from constructs import Construct

from gitops.config import StageConfig

POLICY_NAME = "least-privilege"


def stage_role(
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
        inline_policies={POLICY_NAME: iam.PolicyDocument(statements=statements)},
        max_session_duration=max_session,
    )


def codebuild_principal(cfg: StageConfig) -> iam.IPrincipal:
    """CodeBuild, on behalf of a project of the stage's own account."""
    return iam.ServicePrincipal(
        "codebuild.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": cfg.account}}
    )
