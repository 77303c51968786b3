"""The promotion role (<prefix>-promotion) of a promotion target: push to its env repository, carry the model in.

The model a release pins is copied into the target's own bucket (models/<sha256>/) and registered
in its own model package group as Approved (gitops/model/promotion.py): that, and the push, is all.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from constructs import Construct

from gitops.config import StageConfig
from infra import names
from infra.roles.arns import StageArns
from infra.roles.role import stage_role
from infra.roles.statements import allow, in_region, kms_use

MODELS_PREFIX = "models/"  # gitops.model.pin.STAGE_ARTIFACT_KEY


def create(scope: Construct, cfg: StageConfig, promoted_from: list[StageConfig], key_arn: str) -> iam.Role:
    return stage_role(
        scope,
        "PromotionRole",
        name=names.promotion_role_name(cfg),
        principal=_promote_builds_of(promoted_from),
        description=f"Push releases promoted from {', '.join(s.stage for s in promoted_from)}",
        statements=statements(cfg, key_arn),
        max_session=Duration.hours(1),
    )


def statements(cfg: StageConfig, key_arn: str) -> list[iam.PolicyStatement]:
    arns = StageArns(cfg)
    return [
        allow(["codecommit:GitPull"], [arns.env_repository], sid="PullEnvRepository"),
        allow(
            ["codecommit:GitPush"],
            [arns.env_repository],
            {"StringEqualsIfExists": {"codecommit:References": ["refs/heads/main"]}},
            sid="PushMainOnly",
        ),
        # The promoted release's app image, copied into the stage's own repository (encrypted with its key).
        allow(
            [
                "ecr:BatchCheckLayerAvailability",
                "ecr:CompleteLayerUpload",
                "ecr:DescribeImages",
                "ecr:InitiateLayerUpload",
                "ecr:PutImage",
                "ecr:UploadLayerPart",
            ],
            [arns.app_repository],
            sid="WriteAppImage",
        ),
        kms_use(key_arn, via_services=[f"codecommit.{cfg.region}.amazonaws.com", f"ecr.{cfg.region}.amazonaws.com"]),
        *model_carry_statements(cfg, key_arn),
    ]


def model_carry_statements(cfg: StageConfig, key_arn: str) -> list[iam.PolicyStatement]:
    """Write the pinned artifact and its metrics under models/, read them back, register the package."""
    arns = StageArns(cfg)
    return [
        allow(
            ["s3:ListBucket"],
            [arns.artifact_bucket],
            {"StringLike": {"s3:prefix": [f"{MODELS_PREFIX}*"]}},
            sid="ListPromotedModels",
        ),
        allow(["s3:GetObject", "s3:PutObject"], [arns.artifact_objects(MODELS_PREFIX)], sid="WritePromotedModels"),
        allow(
            ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
            [key_arn],
            {"StringEquals": {"kms:ViaService": [f"s3.{cfg.region}.amazonaws.com"]}},
            sid="EncryptPromotedModels",
        ),
        allow(
            ["sagemaker:AddTags", "sagemaker:CreateModelPackage", "sagemaker:DescribeModelPackage"],
            [arns.model_package_group, arns.model_packages],
            sid="RegisterPromotedModels",
        ),
        # ListModelPackages has no resource-level permissions.
        allow(["sagemaker:ListModelPackages"], ["*"], in_region(cfg), sid="FindPromotedModels"),
    ]


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
