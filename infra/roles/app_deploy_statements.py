"""What CloudFormation needs to deploy the App stack (the serving app), by service, scoped to the stage.

CloudFront and Budgets are global services called in us-east-1: their statements are scoped by
ARN to the stage's account, never by the stage's region.
"""

from __future__ import annotations

from aws_cdk import aws_iam as iam

from infra import names
from infra.roles import deploy_statements as deploy
from infra.roles.arns import StageArns
from infra.roles.statements import allow, in_region

ECS_SERVICE = [
    "ecs:CreateCluster",
    "ecs:CreateService",
    "ecs:DeleteCluster",
    "ecs:DeleteService",
    "ecs:DescribeClusters",
    "ecs:DescribeServiceDeployments",
    "ecs:DescribeServices",
    "ecs:ListServiceDeployments",
    "ecs:ListTagsForResource",
    "ecs:PutClusterCapacityProviders",
    "ecs:StopServiceDeployment",
    "ecs:TagResource",
    "ecs:UntagResource",
    "ecs:UpdateCluster",
    "ecs:UpdateClusterSettings",
    "ecs:UpdateService",
]

LOAD_BALANCING = [
    "elasticloadbalancing:AddTags",
    "elasticloadbalancing:CreateListener",
    "elasticloadbalancing:CreateLoadBalancer",
    "elasticloadbalancing:CreateTargetGroup",
    "elasticloadbalancing:DeleteListener",
    "elasticloadbalancing:DeleteLoadBalancer",
    "elasticloadbalancing:DeleteTargetGroup",
    "elasticloadbalancing:DeregisterTargets",
    "elasticloadbalancing:DescribeCapacityReservation",
    "elasticloadbalancing:DescribeListenerAttributes",
    "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeLoadBalancerAttributes",
    "elasticloadbalancing:DescribeLoadBalancers",
    "elasticloadbalancing:DescribeTags",
    "elasticloadbalancing:DescribeTargetGroupAttributes",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth",
    "elasticloadbalancing:ModifyCapacityReservation",
    "elasticloadbalancing:ModifyIpPools",
    "elasticloadbalancing:ModifyListener",
    "elasticloadbalancing:ModifyListenerAttributes",
    "elasticloadbalancing:ModifyLoadBalancerAttributes",
    "elasticloadbalancing:ModifyTargetGroup",
    "elasticloadbalancing:ModifyTargetGroupAttributes",
    "elasticloadbalancing:RegisterTargets",
    "elasticloadbalancing:RemoveTags",
    "elasticloadbalancing:SetIpAddressType",
    "elasticloadbalancing:SetSecurityGroups",
    "elasticloadbalancing:SetSubnets",
]

DATABASE = [
    "rds:AddTagsToResource",
    "rds:CreateDBInstance",
    "rds:CreateDBInstanceReadReplica",
    "rds:CreateDBParameterGroup",
    "rds:CreateDBSnapshot",
    "rds:CreateDBSubnetGroup",
    "rds:DeleteDBInstance",
    "rds:DeleteDBParameterGroup",
    "rds:DeleteDBSubnetGroup",
    "rds:DescribeDBClusterSnapshots",
    "rds:DescribeDBClusters",
    "rds:DescribeDBEngineVersions",
    "rds:DescribeDBInstanceAutomatedBackups",
    "rds:DescribeDBInstances",
    "rds:DescribeDBParameterGroups",
    "rds:DescribeDBParameters",
    "rds:DescribeDBSnapshots",
    "rds:DescribeDBSubnetGroups",
    "rds:DescribeEngineDefaultParameters",
    "rds:DescribeEvents",
    "rds:ListTagsForResource",
    "rds:ModifyDBInstance",
    "rds:ModifyDBParameterGroup",
    "rds:ModifyDBSubnetGroup",
    "rds:PromoteReadReplica",
    "rds:RebootDBInstance",
    "rds:RemoveRoleFromDBInstance",
    "rds:RemoveTagsFromResource",
    "rds:ResetDBParameterGroup",
    "rds:RestoreDBInstanceFromDBSnapshot",
    "rds:RestoreDBInstanceToPointInTime",
    "rds:StartDBInstanceAutomatedBackupsReplication",
    "rds:StopDBInstanceAutomatedBackupsReplication",
]

DB_SECRET = [
    "secretsmanager:CreateSecret",
    "secretsmanager:DeleteSecret",
    "secretsmanager:DescribeSecret",
    "secretsmanager:GetSecretValue",
    "secretsmanager:PutSecretValue",
    "secretsmanager:RemoveRegionsFromReplication",
    "secretsmanager:ReplicateSecretToRegions",
    "secretsmanager:TagResource",
    "secretsmanager:UntagResource",
    "secretsmanager:UpdateSecret",
]

DISTRIBUTION = [
    "cloudfront:CreateConnectionGroup",
    "cloudfront:CreateDistribution",
    "cloudfront:CreateVpcOrigin",
    "cloudfront:DeleteDistribution",
    "cloudfront:DeleteVpcOrigin",
    "cloudfront:GetConnectionGroup",
    "cloudfront:GetDistribution",
    "cloudfront:GetDistributionConfig",
    "cloudfront:GetVpcOrigin",
    "cloudfront:ListTagsForResource",
    "cloudfront:TagResource",
    "cloudfront:UntagResource",
    "cloudfront:UpdateDistribution",
    "cloudfront:UpdateDistributionWithStagingConfig",
    "cloudfront:UpdateVpcOrigin",
]


def statements(arns: StageArns) -> list[iam.PolicyStatement]:
    from infra.stacks.mlops import BUCKET_MANAGEMENT  # the stage's bucket statement, one list for both stacks
    from infra.stacks.network import NETWORK_MANAGEMENT

    cfg = arns.cfg
    account = cfg.account
    return [
        deploy.manage_stage_roles(arns),  # the task and task-execution roles
        deploy.pass_stage_roles(arns),
        allow(
            ["iam:CreateServiceLinkedRole"],
            [f"arn:aws:iam::{account}:role/aws-service-role/*"],
            {
                "StringEquals": {
                    "iam:AWSServiceName": [
                        "ecs.amazonaws.com",
                        "ecs.application-autoscaling.amazonaws.com",
                        "elasticloadbalancing.amazonaws.com",
                        "rds.amazonaws.com",
                        "vpcorigin.cloudfront.amazonaws.com",
                    ]
                }
            },
            sid="AppServiceLinkedRoles",
        ),
        deploy.create_and_list(
            arns,
            [
                "cloudwatch:GetMetricData",
                "ec2:DescribeAccountAttributes",
                "ec2:DescribeAvailabilityZones",
                "ec2:DescribeIpamPools",
                "ecs:DeregisterTaskDefinition",
                "ecs:DescribeTaskDefinition",
                "ecs:RegisterTaskDefinition",
                "secretsmanager:GetRandomPassword",
            ],
        ),
        # RDS, Secrets Manager, the ECS cluster and CloudWatch Logs encrypt with the stage key through grants.
        deploy.stage_key(arns, ["kms:CreateGrant", "kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey"]),
        allow(NETWORK_MANAGEMENT, ["*"], in_region(cfg), sid="ManageStageNetwork"),  # the app's security groups
        *deploy.log_groups(arns),
        allow(BUCKET_MANAGEMENT, [f"arn:aws:s3:::{cfg.prefix}-*"], sid="ManageStageBuckets"),
        deploy.topics(arns),
        allow(
            ECS_SERVICE,
            [
                f"arn:aws:ecs:{cfg.region}:{account}:cluster/{cfg.app_cluster_name}",
                arns.any_in_stage("ecs", f"service/{cfg.app_cluster_name}/"),
                arns.any_in_stage("ecs", f"service-deployment/{cfg.app_cluster_name}/"),
                arns.any_in_stage("ecs", f"task-definition/{cfg.prefix}-app:"),
            ],
            sid="ManageAppService",
        ),
        # Load balancer, listener and target group names are generated: held to the region.
        allow(LOAD_BALANCING, ["*"], in_region(cfg), sid="ManageAppLoadBalancer"),
        allow(deploy.AUTOSCALING_ACTIONS, ["*"], in_region(cfg), sid="ManageAppScaling"),
        allow(DATABASE, [arns.any_in_stage("rds", "")], sid="ManageAppDatabase"),
        allow(DB_SECRET, [arns.app_db_secret], sid="ManageAppDbSecret"),
        allow(
            DISTRIBUTION,
            [
                f"arn:aws:cloudfront::{account}:distribution/*",
                f"arn:aws:cloudfront::{account}:vpcorigin/*",
                f"arn:aws:cloudfront::{account}:connection-group/*",
            ],
            sid="ManageAppDistribution",
        ),
        allow(
            [
                "cloudwatch:DeleteAlarms",
                "cloudwatch:DeleteDashboards",
                "cloudwatch:DescribeAlarms",
                "cloudwatch:GetDashboard",
                "cloudwatch:ListTagsForResource",
                "cloudwatch:PutDashboard",
                "cloudwatch:PutMetricAlarm",
                "cloudwatch:TagResource",
                "cloudwatch:UntagResource",
            ],
            [
                arns.any_in_stage("cloudwatch", f"alarm:{names.app_alarm_name(cfg, '')}"),
                f"arn:aws:cloudwatch::{account}:dashboard/{cfg.prefix}-app",
            ],
            sid="ManageAppMonitoring",
        ),
        allow(
            [
                "budgets:ListTagsForResource",
                "budgets:ModifyBudget",
                "budgets:TagResource",
                "budgets:UntagResource",
                "budgets:ViewBudget",
                "billing:GetBillingViewData",
            ],
            [f"arn:aws:budgets::{account}:budget/{cfg.prefix}-*", f"arn:aws:billing::{account}:billingview/*"],
            sid="ManageStageBudget",
        ),
    ]
