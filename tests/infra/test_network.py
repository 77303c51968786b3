"""Network stack: isolation (no way to the internet from any stack), endpoints, groups, flow logs, NACLs."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Template
from infra_synth import (
    STACK_IDS,
    STAGE_NAMES,
    cfg_of,
    resolve,
)

pytestmark = pytest.mark.integration  # every test here needs the CDK app (tests/infra/conftest.py)

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
    "secretsmanager",
    "xray",
}


INTERNET_GATEWAYS = (
    "AWS::EC2::InternetGateway",
    "AWS::EC2::EgressOnlyInternetGateway",
    "AWS::EC2::NatGateway",
    "AWS::EC2::VPCGatewayAttachment",
    "AWS::EC2::TransitGateway",
    "AWS::EC2::VPNGateway",
    "AWS::EC2::CarrierGateway",
)


# CloudFront VPC origins need an internet gateway attached to the VPC (with no route to it).
VPC_ORIGIN_GATEWAY = {
    ("Network", "VpcOriginGateway", "AWS::EC2::InternetGateway"),
    ("Network", "VpcOriginGatewayAttachment", "AWS::EC2::VPCGatewayAttachment"),
}


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_no_stack_has_a_way_to_the_internet(synth, stage):
    """The promise the SageMaker group's HTTPS egress rests on: no gateway out, no route to one, no default route."""
    found = set()
    for sid in STACK_IDS:
        resources = synth.template(stage, sid)["Resources"]
        found |= {(sid, lid, r["Type"]) for lid, r in resources.items() if r["Type"] in INTERNET_GATEWAYS}
        for lid, r in resources.items():
            props = r.get("Properties", {})
            if r["Type"] == "AWS::EC2::Route":
                assert props.get("DestinationCidrBlock") != "0.0.0.0/0", f"{stage}/{sid}/{lid}"
                assert props.get("DestinationIpv6CidrBlock") != "::/0", f"{stage}/{sid}/{lid}"
                assert "GatewayId" not in props and "NatGatewayId" not in props, f"{stage}/{sid}/{lid}"
            if r["Type"] == "AWS::EC2::Subnet":
                assert props.get("MapPublicIpOnLaunch", False) is False, f"{stage}/{sid}/{lid}"
    # Only the VPC origin's gateway, attached to the stage's VPC; nothing routes to it.
    assert found == VPC_ORIGIN_GATEWAY, f"{stage}: {sorted(found)}"
    attachment = synth.template(stage, "Network")["Resources"]["VpcOriginGatewayAttachment"]["Properties"]
    assert attachment["InternetGatewayId"] == {"Ref": "VpcOriginGateway"}


# Network --------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_network_is_isolated(synth, stage):
    cfg = cfg_of(stage)
    template = Template.from_json(synth.template(stage, "Network"))
    template.resource_count_is("AWS::EC2::NatGateway", 0)
    template.resource_count_is("AWS::EC2::InternetGateway", 1)  # the VPC origin's, with no route to it
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
