"""Network stack: an isolated VPC (no NAT, no route out), flow logs, NACLs, security groups, endpoints.

The one internet gateway is attached for CloudFront VPC origins and nothing routes to it.
"""

from __future__ import annotations

import ipaddress

from aws_cdk import Fn
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra import names
from infra.components import parameters
from infra.components.log_groups import encrypted_log_group
from infra.roles import deploy_statements as deploy
from infra.roles.arns import StageArns
from infra.roles.statements import allow, in_region
from infra.stacks.stage_stack import StageInputs, StageStack

HTTPS = 443
# Linux (every SageMaker container) picks client ports from 32768-60999: the return traffic of its
# HTTPS calls to S3 through the gateway endpoint arrives there, from S3's public addresses.
EPHEMERAL_PORTS = ec2.AclTraffic.tcp_port_range(32768, 65535)

# Interface endpoints: the AWS APIs that jobs, endpoints and tooling inside the VPC call.
INTERFACE_ENDPOINTS: dict[str, ec2.InterfaceVpcEndpointAwsService] = {
    "SageMakerApi": ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_API,
    "SageMakerRuntime": ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_RUNTIME,
    "SageMakerFeatureStoreRuntime": ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_FEATURESTORE_RUNTIME,
    "Sts": ec2.InterfaceVpcEndpointAwsService.STS,
    "Logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    "Monitoring": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_MONITORING,
    "EcrApi": ec2.InterfaceVpcEndpointAwsService.ECR,
    "EcrDocker": ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
    "Kms": ec2.InterfaceVpcEndpointAwsService.KMS,
    "CodeCommit": ec2.InterfaceVpcEndpointAwsService.CODECOMMIT,
    "GitCodeCommit": ec2.InterfaceVpcEndpointAwsService.CODECOMMIT_GIT,
    "Athena": ec2.InterfaceVpcEndpointAwsService.ATHENA,
    "Glue": ec2.InterfaceVpcEndpointAwsService.GLUE,
    "Ssm": ec2.InterfaceVpcEndpointAwsService.SSM,
    # The serving app's tasks (App stack): the DB secret, and traces from the ADOT collector sidecar.
    "SecretsManager": ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
    "XRay": ec2.InterfaceVpcEndpointAwsService.XRAY,
}


# What CloudFormation's handlers call for the VPC, subnets, route tables, ACLs, groups, endpoints
# (with their private DNS) and flow logs (the pinned cfn-lint provider schemas list them), named
# one by one rather than as Describe* wildcards.
NETWORK_MANAGEMENT = [
    "ec2:AssociateRouteTable",
    "ec2:AttachInternetGateway",
    "ec2:AuthorizeSecurityGroupEgress",
    "ec2:AuthorizeSecurityGroupIngress",
    "ec2:CreateFlowLogs",
    "ec2:CreateInternetGateway",
    "ec2:CreateNetworkAcl",
    "ec2:CreateNetworkAclEntry",
    "ec2:CreateRouteTable",
    "ec2:CreateSecurityGroup",
    "ec2:CreateSubnet",
    "ec2:CreateTags",
    "ec2:CreateVpc",
    "ec2:CreateVpcEndpoint",
    "ec2:DeleteFlowLogs",
    "ec2:DeleteInternetGateway",
    "ec2:DeleteNetworkAcl",
    "ec2:DeleteNetworkAclEntry",
    "ec2:DeleteRouteTable",
    "ec2:DeleteSecurityGroup",
    "ec2:DeleteSubnet",
    "ec2:DeleteTags",
    "ec2:DeleteVpc",
    "ec2:DeleteVpcEndpoints",
    "ec2:DescribeFlowLogs",
    "ec2:DescribeInstances",
    "ec2:DescribeInternetGateways",
    "ec2:DescribeNetworkAcls",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeRouteTables",
    "ec2:DescribeSecurityGroupRules",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeTags",
    "ec2:DescribeVpcAttribute",
    "ec2:DescribeVpcEncryptionControls",
    "ec2:DescribeVpcEndpoints",
    "ec2:DescribeVpcs",
    "ec2:DetachInternetGateway",
    "ec2:DisassociateRouteTable",
    "ec2:ModifySubnetAttribute",
    "ec2:ModifyVpcAttribute",
    "ec2:ModifyVpcEndpoint",
    "ec2:ModifyVpcTenancy",
    "ec2:ReplaceNetworkAclAssociation",
    "ec2:ReplaceNetworkAclEntry",
    "ec2:ReplaceRouteTableAssociation",
    "ec2:RevokeSecurityGroupEgress",
    "ec2:RevokeSecurityGroupIngress",
    "ec2:UpdateSecurityGroupRuleDescriptionsEgress",
    "ec2:UpdateSecurityGroupRuleDescriptionsIngress",
    "route53:AssociateVPCWithHostedZone",
]


class NetworkStack(StageStack):
    def __init__(self, scope: Construct, id: str, *, inputs: StageInputs, **kwargs) -> None:
        cfg = inputs.cfg
        self._az_count = cfg.network.max_azs
        super().__init__(scope, id, inputs=inputs, **kwargs)
        network = ipaddress.ip_network(cfg.network.vpc_cidr)
        key = parameters.stage_key(self, cfg)

        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(cfg.network.vpc_cidr),
            max_azs=cfg.network.max_azs,
            nat_gateways=0,
            create_internet_gateway=False,
            # Room for a fourth subnet per VPC: /16 -> four /18s, of which max_azs are used.
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="isolated",
                    subnet_type=ec2.SubnetType.PRIVATE_ISOLATED,
                    cidr_mask=network.prefixlen + 2,
                )
            ],
            enable_dns_hostnames=True,
            enable_dns_support=True,
            # The default group is attached to nothing here; closing it needs a Lambda-backed
            # custom resource, which the embedded (moto) target cannot run.
            restrict_default_security_group=False,
        )
        isolated = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)

        ec2.FlowLog(
            self,
            "FlowLog",
            resource_type=ec2.FlowLogResourceType.from_vpc(self.vpc),
            traffic_type=ec2.FlowLogTrafficType.ALL,
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(
                encrypted_log_group(
                    self,
                    "FlowLogGroup",
                    name=names.flow_log_group_name(cfg),
                    key=key,
                    retention_days=cfg.network.flow_log_retention_days,
                    retain=cfg.retain_data,
                )
            ),
        )
        _isolated_subnet_acl(self, self.vpc, isolated, cfg.network.vpc_cidr)

        self.sagemaker_sg = ec2.SecurityGroup(
            self,
            "SageMakerSecurityGroup",
            vpc=self.vpc,
            description=f"{cfg.prefix}: SageMaker jobs and endpoint (self-referencing, HTTPS out)",
            allow_all_outbound=False,
        )
        # Separate ingress/egress resources: an inline rule naming its own group is a cycle.
        self.sagemaker_sg.connections.allow_internally(ec2.Port.all_tcp(), "Distributed training between members")
        self.sagemaker_sg.add_egress_rule(
            ec2.Peer.ipv4(cfg.network.vpc_cidr), ec2.Port.tcp(HTTPS), "AWS APIs via interface endpoints"
        )
        # The S3 gateway endpoint's prefix list is region-specific (a lookup); there is no route
        # to anywhere else, so HTTPS to any address can only reach S3.
        self.sagemaker_sg.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(HTTPS), "S3 via the gateway endpoint")

        self.endpoint_sg = ec2.SecurityGroup(
            self,
            "EndpointSecurityGroup",
            vpc=self.vpc,
            description=f"{cfg.prefix}: interface endpoints (HTTPS from the VPC only)",
            allow_all_outbound=False,
        )
        self.endpoint_sg.add_ingress_rule(
            ec2.Peer.ipv4(cfg.network.vpc_cidr), ec2.Port.tcp(HTTPS), "HTTPS from the VPC"
        )

        self.vpc.add_gateway_endpoint("S3Endpoint", service=ec2.GatewayVpcEndpointAwsService.S3, subnets=[isolated])
        for endpoint_id, service in INTERFACE_ENDPOINTS.items():
            self.vpc.add_interface_endpoint(
                f"{endpoint_id}Endpoint",
                service=service,
                subnets=isolated,
                security_groups=[self.endpoint_sg],
                private_dns_enabled=True,
                open=False,
            )

        _vpc_origin_gateway(self, self.vpc)

        subnet_ids = [subnet.subnet_id for subnet in self.vpc.isolated_subnets]
        parameters.publish(self, cfg, names.VPC_ID, self.vpc.vpc_id, "The stage's isolated VPC")
        parameters.publish_list(self, cfg, names.ISOLATED_SUBNET_IDS, subnet_ids, "Isolated subnets, one per AZ")
        parameters.publish(
            self, cfg, names.SAGEMAKER_SECURITY_GROUP_ID, self.sagemaker_sg.security_group_id, "SageMaker jobs/endpoint"
        )
        parameters.publish(
            self, cfg, names.ENDPOINT_SECURITY_GROUP_ID, self.endpoint_sg.security_group_id, "Interface endpoints"
        )

    @property
    def availability_zones(self) -> list[str]:
        # The region's first N zones, resolved by CloudFormation: no context lookup at synth time.
        return [Fn.select(i, Fn.get_azs()) for i in range(self._az_count)]

    @staticmethod
    def deploy_statements(arns: StageArns) -> list[iam.PolicyStatement]:
        """EC2 takes generated ids: the network statement is held to the stage's region."""
        return [
            deploy.manage_stage_roles(arns),  # the flow log's delivery role
            deploy.pass_stage_roles(arns),
            deploy.create_and_list(
                arns, ["autoscaling:DescribeTags", "logs:CreateLogDelivery", "logs:DeleteLogDelivery"]
            ),
            allow(NETWORK_MANAGEMENT, ["*"], in_region(arns.cfg), sid="ManageStageNetwork"),
            *deploy.log_groups(arns),
            deploy.published_parameters(arns),
        ]


def _vpc_origin_gateway(scope: Construct, vpc: ec2.Vpc) -> None:
    """An internet gateway attached to the VPC with no route to it: CloudFront VPC origins require one.

    AWS: "the VPC must have an internet gateway attached" for CloudFront to reach a private ALB
    through a VPC origin; traffic then arrives on ENIs CloudFront places in the ALB's subnets. No
    route table names the gateway (cfn-lint E9204 refuses one), so no subnet reaches the internet.
    """
    gateway = ec2.CfnInternetGateway(scope, "VpcOriginGateway")
    ec2.CfnVPCGatewayAttachment(scope, "VpcOriginGatewayAttachment", vpc_id=vpc.vpc_id, internet_gateway_id=gateway.ref)


def _isolated_subnet_acl(scope: Construct, vpc: ec2.IVpc, subnets: ec2.SubnetSelection, vpc_cidr: str) -> None:
    """NACLs are stateless: allow the VPC both ways, HTTPS out and its return traffic in, nothing else."""
    acl = ec2.NetworkAcl(scope, "IsolatedSubnetAcl", vpc=vpc, subnet_selection=subnets)
    rules = [
        (100, ec2.TrafficDirection.INGRESS, ec2.AclCidr.ipv4(vpc_cidr), ec2.AclTraffic.all_traffic()),
        (110, ec2.TrafficDirection.INGRESS, ec2.AclCidr.any_ipv4(), EPHEMERAL_PORTS),
        (100, ec2.TrafficDirection.EGRESS, ec2.AclCidr.ipv4(vpc_cidr), ec2.AclTraffic.all_traffic()),
        (110, ec2.TrafficDirection.EGRESS, ec2.AclCidr.any_ipv4(), ec2.AclTraffic.tcp_port(HTTPS)),
    ]
    for number, direction, cidr, traffic in rules:
        acl.add_entry(
            f"{direction.name.capitalize()}{number}",
            rule_number=number,
            direction=direction,
            cidr=cidr,
            traffic=traffic,
            rule_action=ec2.Action.ALLOW,
        )
