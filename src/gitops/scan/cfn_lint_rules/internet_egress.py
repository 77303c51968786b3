"""E9201-E9204: the isolated network's promise (no internet gateway, no NAT, no route out), enforced.

An internet gateway is refused unless policy.yaml names it with why (CloudFront VPC origins need
one attached to the VPC); NAT and egress-only gateways and any route to the internet are refused
always (gitops.scan.cfn_lint_rules.UNSUPPRESSIBLE): a route is allowed only to a private
destination through a target that is not a way out.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from cfnlint.rules import CloudFormationLintRule, RuleMatch

_GUIDE = "https://docs.aws.amazon.com/vpc/latest/userguide/route-table-options.html"
# Address space that stays inside a private network (RFC 1918, shared CGNAT, IPv6 unique local).
PRIVATE = [
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
]
# Route targets that lead out of the VPC to the internet.
EXIT_TARGETS = {
    "NatGatewayId": "a NAT gateway",
    "EgressOnlyInternetGatewayId": "an egress-only internet gateway",
    "CarrierGatewayId": "a carrier gateway",
}


def _ref(value: Any) -> str | None:
    if isinstance(value, dict) and len(value) == 1:
        if "Ref" in value and isinstance(value["Ref"], str):
            return value["Ref"]
        got = value.get("Fn::GetAtt")
        if isinstance(got, list) and got and isinstance(got[0], str):
            return got[0]
        if isinstance(got, str):
            return got.split(".", 1)[0]
    return None


def _private(cidr: Any) -> bool:
    if not isinstance(cidr, str):
        return False  # an expression: the scan cannot prove where it leads
    try:
        network = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False
    return any(network.version == p.version and network.subnet_of(p) for p in PRIVATE)  # type: ignore[arg-type]


class _EveryResourceOf(CloudFormationLintRule):
    """A rule that refuses every resource of its types."""

    types: tuple[str, ...] = ()
    what = ""

    def __init__(self) -> None:
        super().__init__()
        self.resource_property_types = list(self.types)

    def match(self, cfn) -> list[RuleMatch]:
        return [
            RuleMatch(["Resources", logical_id], f"{logical_id}: {self.what}")
            for logical_id in cfn.get_resources(list(self.types))
        ]


class InternetGateway(CloudFormationLintRule):
    id = "E9201"
    shortdesc = "Internet gateway in the isolated network"
    description = (
        "The network has no internet gateway; one attached with no route to it is allowed only where policy.yaml"
        " names it and says why (CloudFront VPC origins need one attached to the VPC)"
    )
    source_url = "https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/private-content-vpc-origins.html"
    tags = ["resources", "ec2", "network", "gitops"]

    def __init__(self) -> None:
        super().__init__()
        self.resource_property_types = ["AWS::EC2::InternetGateway", "AWS::EC2::VPCGatewayAttachment"]

    def match(self, cfn) -> list[RuleMatch]:
        matches = [
            RuleMatch(["Resources", logical_id], f"{logical_id}: an internet gateway (AWS::EC2::InternetGateway)")
            for logical_id in cfn.get_resources(["AWS::EC2::InternetGateway"])
        ]
        gateways = set(cfn.get_resources(["AWS::EC2::InternetGateway"]))
        for logical_id, resource in cfn.get_resources(["AWS::EC2::VPCGatewayAttachment"]).items():
            gateway = (resource.get("Properties") or {}).get("InternetGatewayId")
            if gateway is not None and _ref(gateway) not in gateways:
                matches.append(
                    RuleMatch(
                        ["Resources", logical_id, "Properties", "InternetGatewayId"],
                        f"{logical_id}: attaches an internet gateway defined outside this template",
                    )
                )
        return matches


class NatGateway(_EveryResourceOf):
    id = "E9202"
    shortdesc = "NAT gateway in the isolated network"
    description = "A NAT gateway exists only to reach the internet; the isolated network has none (never suppressible)"
    source_url = _GUIDE
    tags = ["resources", "ec2", "network", "gitops"]
    types = ("AWS::EC2::NatGateway",)
    what = "a NAT gateway (AWS::EC2::NatGateway): the isolated network has no way out"


class EgressOnlyInternetGateway(_EveryResourceOf):
    id = "E9203"
    shortdesc = "Egress-only internet gateway in the isolated network"
    description = (
        "An egress-only internet gateway is IPv6's way out; the isolated network has none (never suppressible)"
    )
    source_url = _GUIDE
    tags = ["resources", "ec2", "network", "gitops"]
    types = ("AWS::EC2::EgressOnlyInternetGateway",)
    what = "an egress-only internet gateway (AWS::EC2::EgressOnlyInternetGateway): the isolated network has no way out"


class InternetRoute(CloudFormationLintRule):
    id = "E9204"
    shortdesc = "Route to the internet"
    description = (
        "A route may lead only to a private destination (RFC 1918, 100.64/10, fc00::/7) through a target that is"
        " not an internet, NAT, egress-only or carrier gateway; 0.0.0.0/0 and ::/0 never (never suppressible)"
    )
    source_url = _GUIDE
    tags = ["resources", "ec2", "network", "gitops"]

    def __init__(self) -> None:
        super().__init__()
        self.resource_property_types = ["AWS::EC2::Route"]

    def match(self, cfn) -> list[RuleMatch]:
        gateways = set(cfn.get_resources(["AWS::EC2::InternetGateway"]))
        vpn_gateways = set(cfn.get_resources(["AWS::EC2::VPNGateway"]))
        matches = []
        for logical_id, resource in cfn.get_resources(["AWS::EC2::Route"]).items():
            properties = resource.get("Properties") or {}
            path = ["Resources", logical_id, "Properties"]
            reasons = []
            for key in ("DestinationCidrBlock", "DestinationIpv6CidrBlock"):
                if key in properties and not _private(properties[key]):
                    shown = properties[key] if isinstance(properties[key], str) else "an expression"
                    reasons.append((key, f"its destination {key} {shown} is not a private range"))
            for key, what in EXIT_TARGETS.items():
                if key in properties:
                    reasons.append((key, f"it leads to {what}"))
            if "GatewayId" in properties:
                gateway = properties["GatewayId"]
                target = _ref(gateway)
                is_vpn = target in vpn_gateways or (isinstance(gateway, str) and gateway.startswith("vgw-"))
                if target in gateways or (isinstance(gateway, str) and gateway.startswith("igw-")):
                    reasons.append(("GatewayId", "it leads to an internet gateway"))
                elif not is_vpn:
                    reasons.append(("GatewayId", "its gateway cannot be shown to be a VPN gateway"))
            if reasons:
                said = "; ".join(reason for _key, reason in reasons)
                matches.append(RuleMatch([*path, reasons[0][0]], f"{logical_id}: a route to the internet: {said}"))
        return matches
