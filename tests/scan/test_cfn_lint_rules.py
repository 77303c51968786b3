"""The gate's own cfn-lint rules (E9xxx), each with templates that fail it and templates that pass.

All cases are linted in one cfn-lint run (the Runner is built once); each case is its own stack,
so a finding names exactly the case it comes from.
"""

from __future__ import annotations

import pytest

from gitops.release.pipelines import canonical_json
from gitops.scan import cfn_lint_rules
from gitops.scan.cfn_lint import run_cfn_lint
from gitops.scan.errors import PolicyError
from gitops.scan.policy import UNSUPPRESSIBLE, parse_policy
from gitops.scan.templates import TemplateRef


def _policy(*statements: dict) -> dict:
    return {
        "Bucket": {"Type": "AWS::S3::Bucket"},
        "Policy": {
            "Type": "AWS::S3::BucketPolicy",
            "Properties": {
                "Bucket": {"Ref": "Bucket"},
                "PolicyDocument": {"Version": "2012-10-17", "Statement": list(statements)},
            },
        },
    }


def _allow(principal, condition=None, action="s3:GetObject") -> dict:
    statement = {"Effect": "Allow", "Principal": principal, "Action": action, "Resource": "arn:aws:s3:::b/*"}
    if condition is not None:
        statement["Condition"] = condition
    return statement


def _network(**resources) -> dict:
    return {
        "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.0.0.0/16"}},
        "Routes": {"Type": "AWS::EC2::RouteTable", "Properties": {"VpcId": {"Ref": "Vpc"}}},
        **resources,
    }


def _route(**properties) -> dict:
    return {"Type": "AWS::EC2::Route", "Properties": {"RouteTableId": {"Ref": "Routes"}, **properties}}


def _build(privileged) -> dict:
    environment = {
        "Type": "LINUX_CONTAINER",
        "ComputeType": "BUILD_GENERAL1_SMALL",
        "Image": "aws/codebuild/standard:7.0",
    }
    if privileged is not None:
        environment["PrivilegedMode"] = privileged
    return {
        "Build": {
            "Type": "AWS::CodeBuild::Project",
            "Properties": {
                "ServiceRole": "arn:aws:iam::111111111111:role/build",
                "Artifacts": {"Type": "NO_ARTIFACTS"},
                "Source": {"Type": "NO_SOURCE", "BuildSpec": "version: 0.2"},
                "Environment": environment,
            },
        }
    }


TGW = {"TransitGatewayId": "tgw-0123456789abcdef0"}
# case -> (resources, {rule ids that must be reported}); a rule of ours not listed must not be.
CASES: dict[str, tuple[dict, set[str]]] = {
    # E9101: public bucket policies
    "StarPrincipal": (_policy(_allow("*")), {"E9101"}),
    "AwsStarPrincipal": (_policy(_allow({"AWS": ["arn:aws:iam::111111111111:root", "*"]})), {"E9101"}),
    "AnyAccountRoot": (_policy(_allow({"AWS": "arn:aws:iam::*:root"})), {"E9101"}),
    "NotPrincipal": (_policy({**_allow(None), "NotPrincipal": {"AWS": "arn:aws:iam::1:root"}}), {"E9101"}),
    "TlsOnlyIsNoRestriction": (_policy(_allow("*", {"Bool": {"aws:SecureTransport": "true"}})), {"E9101"}),
    "IfExistsIsNoRestriction": (
        _policy(_allow("*", {"StringEqualsIfExists": {"aws:SourceVpce": "vpce-1"}})),
        {"E9101"},
    ),
    "WildcardValueIsNoRestriction": (_policy(_allow("*", {"StringLike": {"aws:SourceArn": "*"}})), {"E9101"}),
    "HeldToAnEndpoint": (_policy(_allow("*", {"StringEquals": {"aws:SourceVpce": "vpce-1"}})), set()),
    "HeldToTheOrganisation": (_policy(_allow({"AWS": "*"}, {"StringEquals": {"aws:PrincipalOrgID": "o-1"}})), set()),
    "DenyToEveryone": (_policy({**_allow("*"), "Effect": "Deny"}), set()),
    "NamedPrincipal": (_policy(_allow({"AWS": "arn:aws:iam::111111111111:role/reader"})), set()),
    # E9201-E9204: the isolated network
    "Gateway": (_network(Gateway={"Type": "AWS::EC2::InternetGateway"}), {"E9201"}),
    "ForeignGateway": (
        _network(
            Attach={
                "Type": "AWS::EC2::VPCGatewayAttachment",
                "Properties": {"VpcId": {"Ref": "Vpc"}, "InternetGatewayId": "igw-0123"},
            }
        ),
        {"E9201"},
    ),
    "Nat": (_network(Nat={"Type": "AWS::EC2::NatGateway", "Properties": {"SubnetId": "subnet-1"}}), {"E9202"}),
    "EgressOnly": (
        _network(Egress={"Type": "AWS::EC2::EgressOnlyInternetGateway", "Properties": {"VpcId": {"Ref": "Vpc"}}}),
        {"E9203"},
    ),
    "DefaultRoute": (_network(Out=_route(DestinationCidrBlock="0.0.0.0/0", **TGW)), {"E9204"}),
    "Ipv6DefaultRoute": (_network(Out=_route(DestinationIpv6CidrBlock="::/0", **TGW)), {"E9204"}),
    "SplitDefaultRoute": (_network(Out=_route(DestinationCidrBlock="0.0.0.0/1", **TGW)), {"E9204"}),
    "PublicHostRoute": (_network(Out=_route(DestinationCidrBlock="8.8.8.8/32", **TGW)), {"E9204"}),
    "PrivateRouteToNat": (_network(Out=_route(DestinationCidrBlock="10.1.0.0/16", NatGatewayId="nat-1")), {"E9204"}),
    "PrivateRouteToIgw": (
        _network(
            Gateway={"Type": "AWS::EC2::InternetGateway"},
            Out=_route(DestinationCidrBlock="10.1.0.0/16", GatewayId={"Ref": "Gateway"}),
        ),
        {"E9201", "E9204"},
    ),
    "PrivateRouteToTgw": (_network(Out=_route(DestinationCidrBlock="10.1.0.0/16", **TGW)), set()),
    "PrivateRouteToVpn": (
        _network(
            Vpn={"Type": "AWS::EC2::VPNGateway", "Properties": {"Type": "ipsec.1"}},
            Out=_route(DestinationCidrBlock="192.168.0.0/16", GatewayId={"Ref": "Vpn"}),
        ),
        set(),
    ),
    "NoRoutes": (_network(), set()),
    # E9301: privileged builds
    "Privileged": (_build(True), {"E9301"}),
    "PrivilegedByParameter": (_build({"Ref": "AWS::NoValue"}), {"E9301"}),
    "Unprivileged": (_build(False), set()),
    "PrivilegedUnset": (_build(None), set()),
}
OURS = {"E9101", "E9201", "E9202", "E9203", "E9204", "E9301"}


@pytest.fixture(scope="module")
def linted(tmp_path_factory) -> dict[str, set[str]]:
    base = tmp_path_factory.mktemp("rules")
    templates = []
    for name, (resources, _expected) in CASES.items():
        body = {"AWSTemplateFormatVersion": "2010-09-09", "Resources": resources}
        rel = f"stages/dev/templates/{name}.template.json"
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        text = canonical_json(body)
        path.write_bytes(text)
        templates.append(TemplateRef("dev", name, rel, path, "eu-west-1", body, text.decode().splitlines()))
    run = run_cfn_lint(templates)
    found: dict[str, set[str]] = {name: set() for name in CASES}
    for finding in run.findings:
        if finding.rule_id in OURS:
            found[finding.stack].add(finding.rule_id)
    return found


@pytest.mark.parametrize("case", CASES)
def test_each_rule_fails_what_it_must_and_passes_the_rest(linted, case):
    assert linted[case] == CASES[case][1]


def test_the_rules_are_loaded_beside_cfn_lints_own():
    rules = {rule.id for rule in (getattr(cfn_lint_rules, n) for n in cfn_lint_rules.__all__) if hasattr(rule, "id")}
    assert rules == OURS


def test_the_unsuppressible_rules_are_the_network_promise_and_refused_in_the_policy():
    assert set(UNSUPPRESSIBLE) == {
        cfn_lint_rules.NatGateway.id,
        cfn_lint_rules.EgressOnlyInternetGateway.id,
        cfn_lint_rules.InternetRoute.id,
    }
    reason = "a reviewer accepted this network path for the vendor's licence server"
    for rule in UNSUPPRESSIBLE:
        with pytest.raises(PolicyError, match=rf"{rule} \(.*\) can never be suppressed"):
            parse_policy(f"suppressions:\n  - rule: {rule}\n    resources: [Network/Route]\n    reason: {reason}\n")
    # The internet gateway and privileged mode may be named, with a reason.
    for rule in ("E9201", "E9301"):
        parse_policy(f"suppressions:\n  - rule: {rule}\n    resources: [Network/Gateway]\n    reason: {reason}\n")
