"""Synth and assertion tests of the CDK app in infra/: every stack of every stage, synthesized once.

The assertions are the properties a reviewer of the templates would check by hand: encryption,
isolation, least privilege, the release pipeline's stage order, the feature schema, the endpoint.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # infra/ and pipeline_defs/ are imported from the repository root
    sys.path.insert(0, str(ROOT))

import cfnlint.data.schemas  # noqa: E402
from aws_cdk.assertions import Match, Template  # noqa: E402

from gitops.config import StageConfig, kms_alias_name, load_stages  # noqa: E402
from gitops.errors import GitopsError, SynthError  # noqa: E402
from infra import names  # noqa: E402
from infra.app import build_app, load_cdk_context  # noqa: E402
from infra.components.buildspecs import read_buildspec  # noqa: E402
from infra.roles.arns import StageArns  # noqa: E402
from infra.roles.statements import stage_parameters_read  # noqa: E402
from infra.stacks.specs import STACKS  # noqa: E402
from pipeline_defs.features import EVENT_TIME, FEATURES, RECORD_IDENTIFIER  # noqa: E402

STAGES = load_stages(ROOT)
STAGE_NAMES = list(STAGES)
STACK_IDS = [spec.id for spec in STACKS]
REQUIRED_ENDPOINTS = {
    "s3",
    "sagemaker.api",
    "sagemaker.runtime",
    "sts",
    "logs",
    "ecr.api",
    "ecr.dkr",
    "kms",
    "git-codecommit",
}
SYNTH_ENV = {"JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1"}


@dataclass
class Synth:
    outdir: Path
    context: dict
    templates: dict[tuple[str, str], dict]  # (stage, stack id) -> template
    dependencies: dict[tuple[str, str], set[str]]

    def template(self, stage: str, stack_id: str) -> dict:
        return self.templates[(stage, stack_id)]

    def resources(self, stage: str, stack_id: str, type_: str) -> dict[str, dict]:
        return {k: v for k, v in self.template(stage, stack_id)["Resources"].items() if v["Type"] == type_}

    def one(self, stage: str, stack_id: str, type_: str) -> dict:
        found = list(self.resources(stage, stack_id, type_).values())
        assert len(found) == 1, f"{stage}/{stack_id}: expected one {type_}, found {len(found)}"
        return found[0]


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Synth:
    """The whole app, synthesized once for the module (jsii start-up and synthesis take ~20 s)."""
    os.environ.update(SYNTH_ENV)
    outdir = tmp_path_factory.mktemp("cdk.out")
    app = build_app(ROOT, STAGES, outdir=str(outdir))
    assembly = app.synth()
    stacks = {artifact.id: artifact for artifact in assembly.stacks_recursively}
    stack_ids = {artifact_id: artifact.hierarchical_id.split("/")[1] for artifact_id, artifact in stacks.items()}
    templates, dependencies = {}, {}
    for artifact in stacks.values():
        stage, stack_id = artifact.hierarchical_id.split("/")
        templates[(stage, stack_id)] = json.loads(Path(artifact.template_full_path).read_text())
        dependencies[(stage, stack_id)] = {stack_ids[d.id] for d in artifact.dependencies if d.id in stack_ids}
    context = {key: app.node.try_get_context(key) for key in load_cdk_context(ROOT)}
    return Synth(outdir, context, templates, dependencies)


def cfg_of(stage: str) -> StageConfig:
    return STAGES[stage]


def resolve(value, region: str):
    """A string out of the few intrinsics used in service names and ARNs (Join, Ref AWS::Region)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        sep, parts = value["Fn::Join"]
        return sep.join(resolve(part, region) for part in parts)
    if value == {"Ref": "AWS::Region"}:
        return region
    if value == {"Ref": "AWS::URLSuffix"}:
        return "amazonaws.com"
    return json.dumps(value)


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def policy_statements(template: dict) -> list[tuple[str, dict]]:
    """Every statement of every identity and resource policy in a template, with its resource id."""
    found = []
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        documents = []
        if resource["Type"] == "AWS::IAM::Role":
            documents += [p["PolicyDocument"] for p in props.get("Policies", [])]
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents.append(props["PolicyDocument"])
        for key in ("PolicyDocument", "KeyPolicy"):
            if resource["Type"] not in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy") and key in props:
                documents.append(props[key])
        for document in documents:
            found += [(logical_id, statement) for statement in document["Statement"]]
    return found


def identity_statements(template: dict) -> list[tuple[str, dict]]:
    found = []
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::Role":
            found += [(logical_id, s) for p in props.get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
        if resource["Type"] == "AWS::IAM::Policy":
            found += [(logical_id, s) for s in props["PolicyDocument"]["Statement"]]
    return found


# App shape ------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_each_stage_has_the_four_stacks_named_from_its_prefix(synth, stage):
    cfg = cfg_of(stage)
    assert {sid for (s, sid) in synth.templates if s == stage} == set(STACK_IDS)
    manifest = json.loads((synth.outdir / f"assembly-{stage}" / "manifest.json").read_text())
    stacks = {a["displayName"]: a for a in manifest["artifacts"].values() if a["type"] == "aws:cloudformation:stack"}
    for stack_id in STACK_IDS:
        artifact = stacks[f"{stage}/{stack_id}"]
        assert artifact["properties"]["stackName"] == f"{cfg.prefix}-{stack_id.lower()}"
        assert artifact["environment"] == f"aws://{cfg.account}/{cfg.region}"


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_stacks_share_values_without_exports(synth, stage):
    for stack_id in STACK_IDS:
        text = json.dumps(synth.template(stage, stack_id))
        assert "Fn::ImportValue" not in text and "Fn::GetStackOutput" not in text
        outputs = synth.template(stage, stack_id).get("Outputs", {})
        assert not any("Export" in output for output in outputs.values())


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_the_stage_is_exactly_the_stack_specs_with_their_dependencies_in_deploy_order(synth, stage):
    """infra/stacks/specs.py is the one list: the assembly holds its stacks, depending as declared."""
    assert {sid: synth.dependencies[(stage, sid)] for (s, sid) in synth.templates if s == stage} == {
        spec.id: set(spec.depends_on) for spec in STACKS
    }
    manifest = json.loads((synth.outdir / f"assembly-{stage}" / "manifest.json").read_text())
    order = [a["displayName"].split("/")[1] for a in manifest["artifacts"].values() if a["type"].endswith(":stack")]
    assert order == STACK_IDS  # the assembly lists them in spec order, which is a deploy order:
    for spec in STACKS:
        assert all(order.index(dependency) < order.index(spec.id) for dependency in spec.depends_on), spec.id
    for spec in STACKS:
        description = synth.template(stage, spec.id)["Description"]
        assert description == f"{cfg_of(stage).prefix} {spec.id}: {spec.description} (sagemaker-gitops)"


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
}


def handler_permissions(resource_type: str, region: str) -> set[str]:
    schemas = Path(cfnlint.data.schemas.__file__).parent
    providers = json.loads((schemas / "providers" / f"{region}.json").read_text())
    schema = json.loads((schemas / "resources" / f"{providers[resource_type]}.json").read_text())
    handlers = schema.get("handlers", {})
    return {p for op in ("create", "read", "update", "delete") for p in handlers.get(op, {}).get("permissions", [])}


def allows(patterns: set[str], action: str) -> bool:
    return any(fnmatch.fnmatchcase(action.lower(), pattern.lower()) for pattern in patterns)


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
        if not allows(granted, permission) and not allows(set(UNUSED_FEATURE_PERMISSIONS), permission)
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


# Network --------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_network_is_isolated(synth, stage):
    cfg = cfg_of(stage)
    template = Template.from_json(synth.template(stage, "Network"))
    for forbidden in ("AWS::EC2::NatGateway", "AWS::EC2::InternetGateway", "AWS::EC2::VPCGatewayAttachment"):
        template.resource_count_is(forbidden, 0)
    template.resource_count_is("AWS::EC2::Route", 0)  # no route anywhere but local and the S3 gateway
    template.has_resource_properties("AWS::EC2::VPC", {"CidrBlock": cfg.network.vpc_cidr})
    subnets = synth.resources(stage, "Network", "AWS::EC2::Subnet")
    assert len(subnets) == cfg.network.max_azs
    for subnet in subnets.values():
        assert subnet["Properties"].get("MapPublicIpOnLaunch", False) is False
        tags = {t["Key"]: t["Value"] for t in subnet["Properties"]["Tags"]}
        assert tags["aws-cdk:subnet-type"] == "Isolated"


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_network_has_the_required_endpoints_with_private_dns(synth, stage):
    cfg = cfg_of(stage)
    endpoints = synth.resources(stage, "Network", "AWS::EC2::VPCEndpoint").values()
    prefix = f"com.amazonaws.{cfg.region}."
    services = {resolve(e["Properties"]["ServiceName"], cfg.region).removeprefix(prefix) for e in endpoints}
    assert REQUIRED_ENDPOINTS <= services
    assert len(services) >= 9
    for endpoint in endpoints:
        props = endpoint["Properties"]
        if resolve(props["ServiceName"], cfg.region).endswith(".s3"):
            assert props.get("VpcEndpointType") == "Gateway"
        else:
            assert props["PrivateDnsEnabled"] is True
            assert len(props["SubnetIds"]) == cfg.network.max_azs


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_security_groups_admit_nothing_from_the_internet(synth, stage):
    cfg = cfg_of(stage)
    template = synth.template(stage, "Network")
    groups = synth.resources(stage, "Network", "AWS::EC2::SecurityGroup")
    ingress = [rule for g in groups.values() for rule in g["Properties"].get("SecurityGroupIngress", [])]
    ingress += [r["Properties"] for r in synth.resources(stage, "Network", "AWS::EC2::SecurityGroupIngress").values()]
    for rule in ingress:
        assert rule.get("CidrIp") not in ("0.0.0.0/0",) and rule.get("CidrIpv6") not in ("::/0",)
    endpoint_sg = next(k for k in groups if k.startswith("EndpointSecurityGroup"))
    assert groups[endpoint_sg]["Properties"]["SecurityGroupIngress"] == [
        {
            "CidrIp": cfg.network.vpc_cidr,
            "Description": "HTTPS from the VPC",
            "FromPort": 443,
            "IpProtocol": "tcp",
            "ToPort": 443,
        }
    ]
    # The SageMaker group admits its own members (distributed training) and nothing else.
    sagemaker_sg = next(k for k in groups if k.startswith("SageMakerSecurityGroup"))
    assert "SecurityGroupIngress" not in groups[sagemaker_sg]["Properties"]
    self_rules = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::EC2::SecurityGroupIngress" and r["Properties"]["GroupId"]["Fn::GetAtt"][0] == sagemaker_sg
    ]
    assert [r["SourceSecurityGroupId"]["Fn::GetAtt"][0] for r in self_rules] == [sagemaker_sg]


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_flow_logs_go_to_an_encrypted_log_group(synth, stage):
    cfg = cfg_of(stage)
    flow_log = synth.one(stage, "Network", "AWS::EC2::FlowLog")["Properties"]
    assert flow_log["ResourceType"] == "VPC" and flow_log["TrafficType"] == "ALL"
    group = synth.one(stage, "Network", "AWS::Logs::LogGroup")["Properties"]
    assert group["KmsKeyId"] and group["RetentionInDays"] == cfg.network.flow_log_retention_days
    assert flow_log["LogGroupName"] == {"Ref": next(iter(synth.resources(stage, "Network", "AWS::Logs::LogGroup")))}


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_nacl_allows_the_vpc_and_https_with_its_return_traffic_only(synth, stage):
    cfg = cfg_of(stage)
    entries = [e["Properties"] for e in synth.resources(stage, "Network", "AWS::EC2::NetworkAclEntry").values()]
    assert all(e["RuleAction"] == "allow" for e in entries)
    for egress in (False, True):
        side = [e for e in entries if e["Egress"] is egress]
        assert {"CidrBlock": cfg.network.vpc_cidr, "Protocol": -1} in [
            {k: e[k] for k in ("CidrBlock", "Protocol")} for e in side
        ]
        internet = [e for e in side if e["CidrBlock"] == "0.0.0.0/0"]
        assert len(internet) == 1 and internet[0]["Protocol"] == 6
        ports = internet[0]["PortRange"]
        if egress:
            assert ports == {"From": 443, "To": 443}  # HTTPS out (S3 through the gateway endpoint)
        else:
            assert ports["From"] >= 1024 and ports["To"] == 65535  # its return traffic, ephemeral ports only
    associations = synth.resources(stage, "Network", "AWS::EC2::SubnetNetworkAclAssociation")
    assert len(associations) == cfg.network.max_azs


# MLOps ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_buckets_are_private_versioned_tls_only_and_the_artifacts_kms_encrypted(synth, stage):
    cfg = cfg_of(stage)
    buckets = synth.resources(stage, "MLOps", "AWS::S3::Bucket")
    by_name = {b["Properties"]["BucketName"]: (k, b) for k, b in buckets.items()}
    assert set(by_name) == {cfg.artifact_bucket_name, names.access_logs_bucket_name(cfg)}
    policies = synth.resources(stage, "MLOps", "AWS::S3::BucketPolicy").values()
    for logical_id, bucket in by_name.values():
        props = bucket["Properties"]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}
        rules = props["LifecycleConfiguration"]["Rules"]
        assert any("NoncurrentVersionExpiration" in r for r in rules)
        assert any("AbortIncompleteMultipartUpload" in r for r in rules)
        assert bucket["DeletionPolicy"] == ("Retain" if cfg.retain_data else "Delete")
        policy = next(p for p in policies if p["Properties"]["Bucket"] == {"Ref": logical_id})
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in policy["Properties"]["PolicyDocument"]["Statement"]
        ), f"{props['BucketName']}: no TLS-only statement"
    artifact_id, artifact = by_name[cfg.artifact_bucket_name]
    encryption = artifact["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert encryption["ServerSideEncryptionByDefault"]["KMSMasterKeyID"]
    logs_id, logs_bucket = by_name[names.access_logs_bucket_name(cfg)]
    assert artifact["Properties"]["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": logs_id}
    # S3 delivers server access logs only to SSE-S3 buckets.
    logs_encryption = logs_bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert logs_encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_model_registry_and_feature_group_follow_config_and_schema(synth, stage):
    cfg = cfg_of(stage)
    group = synth.one(stage, "MLOps", "AWS::SageMaker::ModelPackageGroup")["Properties"]
    assert group["ModelPackageGroupName"] == cfg.model_package_group_name
    features = synth.one(stage, "MLOps", "AWS::SageMaker::FeatureGroup")["Properties"]
    assert features["FeatureGroupName"] == cfg.feature_group_name
    assert features["FeatureDefinitions"] == [{"FeatureName": f.name, "FeatureType": f.feature_type} for f in FEATURES]
    assert features["RecordIdentifierFeatureName"] == RECORD_IDENTIFIER
    assert features["EventTimeFeatureName"] == EVENT_TIME
    assert features["RoleArn"] == cfg.sagemaker_execution_role_arn
    assert features["OnlineStoreConfig"]["SecurityConfig"]["KmsKeyId"]
    offline = features["OfflineStoreConfig"]["S3StorageConfig"]
    assert offline["S3Uri"].startswith(f"s3://{cfg.artifact_bucket_name}/") and offline["KmsKeyId"]


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_env_repository_is_seeded_from_the_stage_directory(synth, stage):
    cfg = cfg_of(stage)
    repo = synth.one(stage, "MLOps", "AWS::CodeCommit::Repository")["Properties"]
    assert repo["RepositoryName"] == cfg.env_repository_name and repo["Code"]["BranchName"] == "main"
    assert repo["KmsKeyId"]
    asset_hash = repo["Code"]["S3"]["Key"].removesuffix(".zip")
    seeded = synth.outdir / f"asset.{asset_hash}"
    expected_dir = "seed_repo" if cfg.promote_to else "prod_repo"
    assert (seeded / "STAGE").read_text().strip() == stage
    assert sorted(p.name for p in seeded.iterdir()) == sorted(p.name for p in (ROOT / expected_dir).iterdir())


def pipeline_stages(synth: Synth, stage: str) -> list[dict]:
    return synth.one(stage, "MLOps", "AWS::CodePipeline::Pipeline")["Properties"]["Stages"]


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_release_pipeline_stage_order(synth, stage):
    cfg = cfg_of(stage)
    order = [s["Name"] for s in pipeline_stages(synth, stage)]
    manual = [
        s["Name"]
        for s in pipeline_stages(synth, stage)
        for a in s["Actions"]
        if a["ActionTypeId"]["Category"] == "Approval"
    ]
    if cfg.promote_to:
        assert order == ["Source", "Deploy", "Verify", "Approve", "Promote"]
        assert manual == ["Approve"] and order.index("Approve") == order.index("Promote") - 1
    else:
        assert order == ["Source", "Deploy", "Verify"]
        assert manual == []


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_release_pipeline_is_v2_with_a_kms_artifact_store_and_the_env_repo_as_source(synth, stage):
    cfg = cfg_of(stage)
    props = synth.one(stage, "MLOps", "AWS::CodePipeline::Pipeline")["Properties"]
    assert props["PipelineType"] == "V2" and props["Name"] == names.release_pipeline_name(cfg)
    assert props["ArtifactStore"]["EncryptionKey"]["Type"] == "KMS"
    bucket_id = next(
        k
        for k, b in synth.resources(stage, "MLOps", "AWS::S3::Bucket").items()
        if b["Properties"]["BucketName"] == cfg.artifact_bucket_name
    )
    assert props["ArtifactStore"]["Location"] == {"Ref": bucket_id}
    source = props["Stages"][0]["Actions"][0]
    assert source["ActionTypeId"]["Provider"] == "CodeCommit" and source["Configuration"]["BranchName"] == "main"


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_build_projects_embed_the_buildspecs_and_are_encrypted_and_logged(synth, stage):
    cfg = cfg_of(stage)
    projects = {
        p["Properties"]["Name"]: p["Properties"]
        for p in synth.resources(stage, "MLOps", "AWS::CodeBuild::Project").values()
    }
    verbs = [names.DEPLOY, names.VERIFY] + ([names.PROMOTE] if cfg.promote_to else [])
    assert set(projects) == {names.build_project_name(cfg, verb) for verb in verbs}
    for verb in verbs:
        project = projects[names.build_project_name(cfg, verb)]
        assert json.loads(project["Source"]["BuildSpec"]) == read_buildspec(ROOT, verb)
        assert project["EncryptionKey"] and project["LogsConfig"]["CloudWatchLogs"]["Status"] == "ENABLED"
        env = {v["Name"]: v["Value"] for v in project["Environment"]["EnvironmentVariables"]}
        assert env["STAGE"] == stage
        assert project["ServiceRole"] == names.role_arn(cfg.account, names.build_role_name(cfg, verb))
    if cfg.promote_to:
        target = cfg_of(cfg.promote_to)
        env = {
            v["Name"]: v["Value"]
            for v in projects[names.build_project_name(cfg, names.PROMOTE)]["Environment"]["EnvironmentVariables"]
        }
        assert env["TARGET_STAGE"] == target.stage
        assert env["TARGET_REPOSITORY"] == target.env_repository_name
        assert env["TARGET_ROLE_ARN"] == names.role_arn(target.account, names.promotion_role_name(target))
    for group in synth.resources(stage, "MLOps", "AWS::Logs::LogGroup").values():
        assert group["Properties"]["KmsKeyId"] and group["Properties"]["RetentionInDays"] == cfg.log_retention_days


@pytest.mark.parametrize("stage", [s for s in STAGE_NAMES if STAGES[s].promote_to])
def test_approval_notifies_an_encrypted_topic_and_points_at_the_release(synth, stage):
    cfg = cfg_of(stage)
    template = Template.from_json(synth.template(stage, "MLOps"))
    template.has_resource_properties(
        "AWS::SNS::Topic", {"TopicName": names.approval_topic_name(cfg), "KmsMasterKeyId": Match.any_value()}
    )
    if cfg.approval_email:
        template.has_resource_properties(
            "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": cfg.approval_email}
        )
    approve = next(s for s in pipeline_stages(synth, stage) if s["Name"] == "Approve")["Actions"][0]
    assert "release/manifest.json" in approve["Configuration"]["CustomData"]
    assert "#{SourceVariables.CommitId}" in approve["Configuration"]["ExternalEntityLink"]


# Inference ------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_endpoint_exists_only_with_a_model_package(synth, stage):
    template = synth.template(stage, "Inference")
    parameter = template["Parameters"]["ModelPackageArn"]
    assert (parameter["Type"], parameter["Default"]) == ("String", "")
    condition = template["Conditions"]["HasModelPackage"]
    assert condition == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ModelPackageArn"}, ""]}]}
    for logical_id, resource in template["Resources"].items():
        if not resource["Type"].startswith("AWS::SNS::"):
            assert resource.get("Condition") == "HasModelPackage", logical_id


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_model_and_endpoint_are_isolated_and_encrypted(synth, stage):
    cfg = cfg_of(stage)
    model = synth.one(stage, "Inference", "AWS::SageMaker::Model")["Properties"]
    assert model["EnableNetworkIsolation"] is True
    assert model["PrimaryContainer"]["ModelPackageName"] == {"Ref": "ModelPackageArn"}
    assert model["ExecutionRoleArn"] == cfg.sagemaker_execution_role_arn
    assert set(model["VpcConfig"]) == {"Subnets", "SecurityGroupIds"}
    config = synth.one(stage, "Inference", "AWS::SageMaker::EndpointConfig")["Properties"]
    assert config["KmsKeyId"]
    capture = config["DataCaptureConfig"]
    assert capture["EnableCapture"] is True and capture["KmsKeyId"]
    assert capture["DestinationS3Uri"].startswith(f"s3://{cfg.artifact_bucket_name}/")
    variant = config["ProductionVariants"][0]
    assert variant["InstanceType"] == cfg.inference.instance_type
    assert variant["InitialInstanceCount"] == cfg.inference.initial_instance_count
    endpoint = synth.one(stage, "Inference", "AWS::SageMaker::Endpoint")["Properties"]
    assert endpoint["EndpointName"] == cfg.endpoint_name


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_endpoint_autoscales_on_invocations_per_instance(synth, stage):
    cfg = cfg_of(stage)
    template = Template.from_json(synth.template(stage, "Inference"))
    template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget",
        {
            "MinCapacity": cfg.inference.min_capacity,
            "MaxCapacity": cfg.inference.max_capacity,
            "ResourceId": f"endpoint/{cfg.endpoint_name}/variant/AllTraffic",
            "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
            "ServiceNamespace": "sagemaker",
        },
    )
    template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        {
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": Match.object_like(
                {
                    "TargetValue": cfg.inference.target_invocations_per_instance,
                    "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
                }
            ),
        },
    )


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_endpoint_alarms_notify_an_encrypted_topic(synth, stage):
    cfg = cfg_of(stage)
    topics = synth.resources(stage, "Inference", "AWS::SNS::Topic")
    ((topic_id, topic),) = topics.items()
    assert topic["Properties"]["KmsMasterKeyId"]
    alarms = {
        a["Properties"]["MetricName"]: a["Properties"]
        for a in synth.resources(stage, "Inference", "AWS::CloudWatch::Alarm").values()
    }
    assert {"Invocation5XXErrors", "ModelLatency"} <= set(alarms)
    latency = alarms["ModelLatency"]
    assert latency["Threshold"] == cfg.inference.latency_alarm_ms * 1000  # reported in microseconds
    assert latency["ComparisonOperator"] == "GreaterThanThreshold"
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == [{"Ref": topic_id}]
        assert {"Name": "EndpointName", "Value": cfg.endpoint_name} in alarm["Dimensions"]
        assert alarm["AlarmName"].startswith(f"{cfg.endpoint_name}-")


# Context, determinism, bad input -------------------------------------------------------------


def test_cdk_json_is_the_cli_entry_and_its_feature_flags_are_applied(synth):
    cdk_json = json.loads((ROOT / "cdk.json").read_text())
    assert "infra/app.py" in cdk_json["app"]
    assert cdk_json["context"] and synth.context == cdk_json["context"]
    # A flag with a visible effect: access logs are granted by bucket policy, not the legacy ACL.
    assert cdk_json["context"]["@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy"] is True
    for stage in STAGE_NAMES:
        cfg = cfg_of(stage)
        buckets = synth.resources(stage, "MLOps", "AWS::S3::Bucket")
        logs_id = next(
            k for k, b in buckets.items() if b["Properties"]["BucketName"] == names.access_logs_bucket_name(cfg)
        )
        assert "AccessControl" not in buckets[logs_id]["Properties"]
        policy = next(
            p
            for p in synth.resources(stage, "MLOps", "AWS::S3::BucketPolicy").values()
            if p["Properties"]["Bucket"] == {"Ref": logs_id}
        )
        principals = [s.get("Principal") for s in policy["Properties"]["PolicyDocument"]["Statement"]]
        assert {"Service": "logging.s3.amazonaws.com"} in principals


def test_synth_is_byte_identical_from_another_checkout_and_process(synth, tmp_path):
    """A second synthesis, in a fresh interpreter with another hash seed, from a copy of the tree elsewhere."""
    checkout = tmp_path / "elsewhere" / "checkout"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in ("infra", "src", "pipeline_defs", "buildspecs", "seed_repo", "prod_repo"):
        shutil.copytree(ROOT / part, checkout / part, ignore=ignore)
    shutil.copy2(ROOT / "cdk.json", checkout / "cdk.json")
    outdir = tmp_path / "cdk.out"
    script = (
        "import sys; from pathlib import Path; root = Path(sys.argv[1]);"
        "sys.path[:0] = [str(root), str(root / 'src')];"
        "from gitops.config import load_stages; from infra.app import build_app;"
        "build_app(root, load_stages(root), outdir=sys.argv[2]).synth()"
    )
    env = {**os.environ, **SYNTH_ENV, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", script, str(checkout), str(outdir)], check=True, env=env, cwd=tmp_path)
    first = {p.relative_to(synth.outdir): p.read_bytes() for p in synth.outdir.rglob("*") if p.is_file()}
    second = {p.relative_to(outdir): p.read_bytes() for p in outdir.rglob("*") if p.is_file()}
    assert sorted(first) == sorted(second)
    differing = [str(path) for path in first if first[path] != second[path]]
    assert differing == []
    assert any(str(path).endswith(".template.json") for path in first)


def test_a_broken_buildspec_fails_synthesis_naming_the_file(tmp_path):
    (tmp_path / "buildspecs").mkdir()
    (tmp_path / "buildspecs" / "deploy.yml").write_text("version: 0.2\nphases: [unclosed\n")
    with pytest.raises(GitopsError, match=r"buildspecs/deploy\.yml:.* not valid YAML"):
        read_buildspec(tmp_path, "deploy")
    (tmp_path / "buildspecs" / "verify.yml").write_text("version: 0.1\nphases: {build: {commands: [x]}}\n")
    with pytest.raises(GitopsError, match=r"buildspecs/verify\.yml: version"):
        read_buildspec(tmp_path, "verify")
    with pytest.raises(SynthError, match=r"buildspecs/promote\.yml: buildspec not found"):
        read_buildspec(tmp_path, "promote")


def test_a_missing_cdk_json_is_a_synth_error(tmp_path):
    with pytest.raises(SynthError, match="cdk.json: not found"):
        load_cdk_context(tmp_path)


@pytest.mark.parametrize("name", ["deploy", "verify", "promote", "build-and-scan", "publish"])
def test_buildspecs_are_thin(name):
    """Version 0.2, one gitops verb per phase, no shell logic: anything with an `if` belongs in Python."""
    spec = read_buildspec(ROOT, name)
    commands = [c for phase in spec["phases"].values() for c in phase.get("commands", [])]
    verbs = [c for c in commands if "gitops " in c]
    assert verbs, f"{name}: runs no gitops verb"
    for phase in spec["phases"].values():
        assert sum("gitops " in c for c in phase.get("commands", [])) <= 1
    for command in commands:
        assert not any(token in f" {command} " for token in (" if ", " for ", " then ", "&&", "||", ";")), command
