"""Base stack: the stage key; its roles and their policies; the execution role's per-stack statements; the guard.

The guard: the env repository takes writes from its one writer only.
"""

from __future__ import annotations

import fnmatch

import pytest
from aws_cdk.assertions import Template
from infra_synth import (
    STACK_IDS,
    STAGE_NAMES,
    STAGES,
    Synth,
    allows,
    as_list,
    cfg_of,
    handler_permissions,
    identity_statements,
    policy_statements,
)

from gitops.config import kms_alias_name
from infra import names
from infra.roles.arns import StageArns
from infra.roles.statements import stage_parameters_read
from infra.stacks.specs import STACKS

pytestmark = pytest.mark.integration  # every test here needs the CDK app (tests/infra/conftest.py)

# Base -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_base_key_rotates_and_carries_the_stage_alias(synth, stage):
    template = Template.from_json(synth.template(stage, "Base"))
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    template.has_resource_properties("AWS::KMS::Alias", {"AliasName": kms_alias_name(cfg_of(stage))})
    template.has_resource_properties(
        "AWS::SSM::Parameter", {"Name": names.ssm_parameter_name(cfg_of(stage), names.KEY_ARN)}
    )


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_base_roles_have_the_fixed_names_other_stacks_use(synth, stage):
    cfg = cfg_of(stage)
    roles = {r["Properties"]["RoleName"] for r in synth.resources(stage, "Base", "AWS::IAM::Role").values()}
    expected = {
        cfg.sagemaker_execution_role_name,
        names.pipeline_role_name(cfg),
        names.deploy_role_name(cfg),
        names.build_role_name(cfg, names.DEPLOY),
        names.build_role_name(cfg, names.VERIFY),
    }
    if cfg.promote_to:
        expected.add(names.build_role_name(cfg, names.PROMOTE))
    if any(s.promote_to == stage for s in STAGES.values()):
        expected.add(names.promotion_role_name(cfg))
    assert roles == expected


@pytest.mark.parametrize("stage", [s for s in STAGE_NAMES if any(c.promote_to == s for c in STAGES.values())])
def test_promotion_role_trusts_only_the_source_stage_promote_build_and_pushes_only_its_repo(synth, stage):
    cfg = cfg_of(stage)
    sources = [s for s in STAGES.values() if s.promote_to == stage]
    role = next(
        r
        for r in synth.resources(stage, "Base", "AWS::IAM::Role").values()
        if r["Properties"]["RoleName"] == names.promotion_role_name(cfg)
    )
    trust = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert {s["Principal"]["AWS"] for s in trust} == {f"arn:aws:iam::{src.account}:root" for src in sources}
    assert {s["Condition"]["ArnEquals"]["aws:PrincipalArn"] for s in trust} == {
        names.role_arn(src.account, names.build_role_name(src, names.PROMOTE)) for src in sources
    }
    statements = role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    git = [s for s in statements if any(a.startswith("codecommit:") for a in as_list(s["Action"]))]
    assert {a for s in git for a in as_list(s["Action"])} == {"codecommit:GitPull", "codecommit:GitPush"}
    repo_arn = f"arn:aws:codecommit:{cfg.region}:{cfg.account}:{cfg.env_repository_name}"
    assert all(s["Resource"] == repo_arn for s in git)


@pytest.mark.parametrize("stage", [s for s in STAGE_NAMES if STAGES[s].promote_to])
def test_promote_build_may_assume_the_target_promotion_role(synth, stage):
    target = cfg_of(cfg_of(stage).promote_to)
    statements = [s for _, s in identity_statements(synth.template(stage, "Base"))]
    assume = [s for s in statements if "sts:AssumeRole" in as_list(s["Action"])]
    assert [s["Resource"] for s in assume] == [names.role_arn(target.account, names.promotion_role_name(target))]


@pytest.mark.parametrize("stack_id", STACK_IDS)
@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_no_policy_allows_every_action_and_wildcard_resources_are_conditioned(synth, stage, stack_id):
    template = synth.template(stage, stack_id)
    for logical_id, statement in policy_statements(template):
        if statement["Effect"] != "Allow":
            continue
        actions, resources = as_list(statement["Action"]), as_list(statement.get("Resource", []))
        assert "*" not in actions, f"{stage}/{stack_id}/{logical_id}: Action '*'"
        assert not ("*" in actions and "*" in resources), f"{stage}/{stack_id}/{logical_id}: '*' on '*'"
    for logical_id, statement in identity_statements(template):
        actions, resources = as_list(statement["Action"]), as_list(statement["Resource"])
        assert not any(a.endswith(":*") for a in actions), f"{stage}/{stack_id}/{logical_id}: service wildcard"
        if "*" in resources:
            assert "Condition" in statement, f"{stage}/{stack_id}/{logical_id}: {actions} on '*' unconditioned"


# What CloudFormation's resource handlers call (from the pinned cfn-lint provider schemas) for
# features these templates do not use; every other handler permission must be granted.
UNUSED_FEATURE_PERMISSIONS = {
    "lambda:*ProvisionedConcurrencyConfig": "scalable targets are SageMaker variants",
    "codestar-connections:PassConnection": "the pipeline's source is CodeCommit",
    "ec2:*SubnetCidrBlock": "IPv4 only",
    "ec2:CreateVpcEncryptionControl": "no VPC encryption control",
    "vpc-lattice:*": "no VPC Lattice",
    "vpce:AllowMultiRegion": "endpoints serve their own region",
    "iam:*GroupPolicy": "policies attach to roles only",
    "iam:*UserPolicy": "policies attach to roles only",
    "iam:*RolePermissionsBoundary": "no permissions boundaries",
    "firehose:*": "log groups deliver nowhere else",
    "logs:*DataProtectionPolicy": "no data protection policies",
    "logs:*IndexPolicy": "no index policies",
    "logs:*ResourcePolicy": "no log resource policies",
    "logs:PutBearerTokenAuthentication": "no bearer tokens",
    "logs:PutLogGroupDeletionProtection": "removal is the stack's RemovalPolicy",
    "s3:REST.PUT.OBJECT": "not an IAM action",
    "s3tables:*": "no S3 Tables",
    "s3:*Metadata*Configuration": "no S3 Metadata tables",
    "s3:DeleteBucket*": "API names of configuration removals; their IAM actions are the Put* ones",
    "s3:PutBucketReplication": "an API name; its IAM action s3:PutReplicationConfiguration is unused",
    "s3:Put*Configuration": "accelerate/analytics/tiering/inventory/metrics/lock/replication unused",
    "s3:DeleteObject": "buckets are created empty",
    "s3:PutObjectAcl": "object ownership is enforced: ACLs are disabled",
    "sns:PutDataProtectionPolicy": "no data protection policies",
    "ecs:PutAccountSetting*": "no ECS account settings are changed",
    "cognito-idp:*": "no Cognito authentication on the app's listener",
}


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_deploy_role_may_call_what_cloudformation_does_for_every_resource_of_the_stage(synth, stage):
    """A hand-scoped CloudFormation execution role fails at deploy time; catch the gap at synth time."""
    cfg = cfg_of(stage)
    role = next(
        r
        for r in synth.resources(stage, "Base", "AWS::IAM::Role").values()
        if r["Properties"]["RoleName"] == names.deploy_role_name(cfg)
    )
    statements = role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    granted = {action for statement in statements for action in as_list(statement["Action"])}
    types = {r["Type"] for sid in STACK_IDS for r in synth.template(stage, sid)["Resources"].values()}
    missing = {
        f"{resource_type}: {permission}"
        for resource_type in sorted(types)
        for permission in handler_permissions(resource_type, cfg.region)
        if not allows(granted, permission)
        and not allows(set(UNUSED_FEATURE_PERMISSIONS) | set(UNUSED_BY_TYPE.get(resource_type, {})), permission)
    }
    assert sorted(missing) == []
    # CodeBuild projects have no registry handlers: their API is checked by hand.
    assert {"codebuild:CreateProject", "codebuild:UpdateProject", "codebuild:DeleteProject"} <= granted


# Handler permissions of one resource type for a feature its stack does not use, though another
# stack's statements grant the action (so the stage-wide test above cannot tell).
UNUSED_BY_TYPE = {
    "AWS::EC2::FlowLog": {
        "iam:CreateServiceLinkedRole": "flow logs deliver to CloudWatch Logs, not through a service-linked role",
        "s3:*BucketPolicy": "flow logs deliver to CloudWatch Logs, not to an S3 bucket",
    },
    "AWS::EC2::VPCGatewayAttachment": {
        "ec2:*VpnGateway*": "it attaches the VPC origin's internet gateway, no VPN gateway"
    },
    "AWS::RDS::DBInstance": {
        "iam:ListRoles": "no IAM role is associated with the DB instance (no S3 import or export)",
        "rds:AddRoleToDBInstance": "no IAM role is associated with the DB instance (no S3 import or export)",
    },
    "AWS::SecretsManager::SecretTargetAttachment": {
        "docdb-elastic:*": "the secret is attached to an RDS instance",
        "redshift*": "the secret is attached to an RDS instance",
    },
    "AWS::CloudFront::VpcOrigin": {"sts:AssumeRole": "the VPC origin's load balancer is in the stage's own account"},
    "AWS::ECR::PullThroughCacheRule": dict(
        [
            ("secretsmanager:GetSecretValue", "ECR Public needs no upstream credentials"),
            ("iam:PassRole", "a custom role serves ECR-to-ECR caches only; the upstream is ECR Public"),
        ]
    ),
    "AWS::CloudFront::Distribution": {
        "cloudfront:CreateDistributionWithTags": "an API name; IAM authorizes it as CreateDistribution and TagResource",
    },
    "AWS::Athena::WorkGroup": {
        "iam:CreateServiceLinkedRole": "a workgroup writing to the stage's bucket and key needs no service-linked role",
    },
}


@pytest.mark.parametrize("spec", STACKS, ids=STACK_IDS)
@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_each_stack_brings_the_deploy_permissions_of_its_own_resources(synth, stage, spec):
    """The execution role's statements come per stack: each stack's own cover its own resources."""
    cfg = cfg_of(stage)
    arns = StageArns(cfg)
    own = [*spec.stack_class.deploy_statements(arns), stage_parameters_read(arns)]
    assert all(statement.sid for statement in own), "every deploy statement is named (merged by Sid)"
    granted = {action for statement in own for action in statement.actions}
    types = {r["Type"] for r in synth.template(stage, spec.id)["Resources"].values()}
    missing = {
        f"{resource_type}: {permission}"
        for resource_type in sorted(types)
        for permission in handler_permissions(resource_type, cfg.region)
        if not allows(granted, permission)
        and not allows(set(UNUSED_FEATURE_PERMISSIONS) | set(UNUSED_BY_TYPE.get(resource_type, {})), permission)
    }
    assert sorted(missing) == []


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_deploy_role_is_the_merge_of_what_the_stacks_contribute(synth, stage):
    cfg = cfg_of(stage)
    role = next(
        r
        for r in synth.resources(stage, "Base", "AWS::IAM::Role").values()
        if r["Properties"]["RoleName"] == names.deploy_role_name(cfg)
    )
    statements = role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    by_sid = {s["Sid"]: s for s in statements}
    assert len(by_sid) == len(statements), "one statement per Sid"
    arns = StageArns(cfg)
    contributed: dict[str, set[str]] = {}
    for spec in STACKS:
        for statement in spec.stack_class.deploy_statements(arns):
            contributed.setdefault(statement.sid, set()).update(statement.actions)
            assert set(as_list(by_sid[statement.sid]["Resource"])) >= set(statement.resources), statement.sid
    contributed.setdefault("ReadStageParameters", set()).update(stage_parameters_read(arns).actions)
    assert {sid: set(as_list(s["Action"])) for sid, s in by_sid.items()} == contributed


# Who writes the env repository ----------------------------------------------------------------


def grants(statement: dict, action: str, resource: str) -> bool:
    """Whether a statement covers the action on the resource; an unresolved (intrinsic) resource counts as covering."""
    actions = as_list(statement.get("Action", []))
    resources = as_list(statement.get("Resource", []))
    return allows(set(actions), action) and any(
        not isinstance(r, str) or fnmatch.fnmatchcase(resource, r) for r in resources
    )


def role_statements(synth: Synth, stage: str, stack_id: str, logical_id: str, role: dict) -> list[dict]:
    """A role's inline policies and the AWS::IAM::Policy resources of its stack attached to it."""
    attached = [
        p["Properties"]["PolicyDocument"]
        for p in synth.resources(stage, stack_id, "AWS::IAM::Policy").values()
        if {"Ref": logical_id} in p["Properties"].get("Roles", [])
    ]
    documents = [p["PolicyDocument"] for p in role.get("Policies", [])] + attached
    return [s for d in documents for s in d["Statement"]]


def may(own: list[dict], guard: dict, role_arn: str, action: str, resource: str) -> bool:
    """IAM's verdict on one role for one action: an Allow of its own, and no Deny of the guard applying."""
    allowed = any(s["Effect"] == "Allow" and grants(s, action, resource) for s in own)
    for deny in guard["PolicyDocument"]["Statement"]:
        assert deny["Effect"] == "Deny" and set(deny["Condition"]) == {"ArnNotEquals"}
        if grants(deny, action, resource) and role_arn != deny["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]:
            return False
    return allowed


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_only_the_writer_of_an_env_repository_may_push_to_it(synth, stage):
    """CodeCommit has no resource policy: a Deny on every role of the stage names the one writer."""
    cfg = cfg_of(stage)
    repo = f"arn:aws:codecommit:{cfg.region}:{cfg.account}:{cfg.env_repository_name}"
    promoted_to = any(s.promote_to == stage for s in STAGES.values())
    writer = names.promotion_role_name(cfg) if promoted_to else names.publish_role_name(cfg)
    (guard_id, guard), *others = synth.resources(stage, "Base", "AWS::IAM::ManagedPolicy").items()
    assert others == [] and guard["Properties"]["ManagedPolicyName"] == names.env_repository_guard_name(cfg)
    guard = guard["Properties"]
    denies = guard["PolicyDocument"]["Statement"]
    assert all(d["Effect"] == "Deny" and d["Resource"] == repo for d in denies)
    content = next(d for d in denies if "codecommit:GitPush" in as_list(d["Action"]))
    assert {"codecommit:GitPush", "codecommit:PutFile", "codecommit:DeleteBranch"} <= set(content["Action"])
    assert content["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": names.role_arn(cfg.account, writer)}}

    roles = {
        (sid, lid): r["Properties"]
        for sid in STACK_IDS
        for lid, r in synth.resources(stage, sid, "AWS::IAM::Role").items()
    }
    guard_arn = f"arn:aws:iam::{cfg.account}:policy/{names.env_repository_guard_name(cfg)}"
    for (sid, lid), role in roles.items():
        expected = {"Ref": guard_id} if sid == "Base" else guard_arn
        assert expected in role.get("ManagedPolicyArns", []), f"{stage}/{sid}/{lid} does not carry the guard"

    pushers = set()
    for (sid, lid), role in roles.items():
        name = role.get("RoleName", f"{cfg.prefix}-{sid.lower()}-{lid}")  # CloudFormation's names start so
        own = role_statements(synth, stage, sid, lid, role)
        for action in ("codecommit:GitPush", "codecommit:PutFile", "codecommit:CreateCommit"):
            if may(own, guard, names.role_arn(cfg.account, name), action, repo):
                pushers.add((name, action))
    # The promotion role pushes where releases are promoted to; where they are published, the
    # publish role (created outside these stacks) does, and no role of the stage can. CloudFormation
    # commits the seed directory as it creates the repository.
    seed = {(names.deploy_role_name(cfg), "codecommit:CreateCommit")}
    assert pushers == seed | ({(writer, "codecommit:GitPush")} if promoted_to else set())
    # Without the guard, a role given a push permission by a later change would push:
    widened = [content | {"Effect": "Allow"}]
    deploy_role_arn = names.role_arn(cfg.account, names.deploy_role_name(cfg))
    assert not may(widened, guard, deploy_role_arn, "codecommit:GitPush", repo)
    assert may(widened, {"PolicyDocument": {"Statement": []}}, deploy_role_arn, "codecommit:GitPush", repo)
