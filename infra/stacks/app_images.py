"""AppImages stack: the stage's ECR repository of the app image, and the cache the collector sidecar pulls through.

Its own stack, deployed before App: CI pushes (dev) and promote copies (prod) the image into the
repository before the App stack runs it by digest, so the repository cannot be born with the service.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.components import parameters
from infra.roles import deploy_statements as deploy
from infra.roles.arns import StageArns
from infra.roles.statements import allow
from infra.stacks.stage_stack import StageInputs, StageStack

# Images kept: a rollback runs an earlier release's digest, which must still be here.
KEEP_IMAGES = 50
# Untagged manifests (a multi-arch index's children are tagged through it) expire after this.
UNTAGGED_DAYS = 14
# The prefix under which ECR caches ECR Public images (the ADOT collector) for the isolated tasks.
PUBLIC_CACHE_PREFIX = "ecr-public"


class AppImagesStack(StageStack):
    def __init__(self, scope: Construct, id: str, *, inputs: StageInputs, **kwargs) -> None:
        super().__init__(scope, id, inputs=inputs, **kwargs)
        cfg = inputs.cfg
        key = parameters.stage_key(self, cfg)
        ecr.Repository(
            self,
            "AppRepository",
            repository_name=cfg.app_repository_name,
            image_scan_on_push=True,
            image_tag_mutability=ecr.TagMutability.IMMUTABLE,
            encryption=ecr.RepositoryEncryption.KMS,
            encryption_key=key,
            lifecycle_rules=[
                ecr.LifecycleRule(
                    rule_priority=1,
                    description=f"untagged images older than {UNTAGGED_DAYS} days",
                    tag_status=ecr.TagStatus.UNTAGGED,
                    max_image_age=Duration.days(UNTAGGED_DAYS),
                ),
                ecr.LifecycleRule(
                    rule_priority=2,
                    description=f"keep the newest {KEEP_IMAGES} images (releases roll back to pinned digests)",
                    tag_status=ecr.TagStatus.ANY,
                    max_image_count=KEEP_IMAGES,
                ),
            ],
            removal_policy=RemovalPolicy.RETAIN if cfg.retain_data else RemovalPolicy.DESTROY,
            empty_on_delete=False,
        )
        # The tasks have no route out: ECR fetches the public collector image itself, through this rule.
        ecr.CfnPullThroughCacheRule(
            self,
            "PublicImageCache",
            ecr_repository_prefix=PUBLIC_CACHE_PREFIX,
            upstream_registry_url="public.ecr.aws",
        )

    @staticmethod
    def deploy_statements(arns: StageArns) -> list[iam.PolicyStatement]:
        return [
            allow(
                ["iam:CreateServiceLinkedRole"],
                [f"arn:aws:iam::{arns.cfg.account}:role/aws-service-role/*"],
                {"StringEquals": {"iam:AWSServiceName": "ecr.amazonaws.com"}},
                sid="EcrServiceLinkedRole",
            ),
            deploy.stage_key(arns, ["kms:CreateGrant", "kms:Decrypt", "kms:DescribeKey", "kms:RetireGrant"]),
            # Pull-through cache rules are registry settings: no resource-level permissions.
            deploy.create_and_list(
                arns,
                [
                    "ecr:CreatePullThroughCacheRule",
                    "ecr:DeletePullThroughCacheRule",
                    "ecr:DescribePullThroughCacheRules",
                    "ecr:UpdatePullThroughCacheRule",
                ],
            ),
            allow(
                [
                    "ecr:CreateRepository",
                    "ecr:DeleteLifecyclePolicy",
                    "ecr:DeleteRepository",
                    "ecr:DeleteRepositoryPolicy",
                    "ecr:DescribeRepositories",
                    "ecr:GetLifecyclePolicy",
                    "ecr:GetRepositoryPolicy",
                    "ecr:ListTagsForResource",
                    "ecr:PutImageScanningConfiguration",
                    "ecr:PutImageTagMutability",
                    "ecr:PutLifecyclePolicy",
                    "ecr:SetRepositoryPolicy",
                    "ecr:TagResource",
                    "ecr:UntagResource",
                ],
                [arns.app_repository],
                sid="ManageAppRepository",
            ),
        ]
