"""Read-backs of the live resources the promises rest on, their repairs, and CloudFormation drift (Stubber)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from gitops.deploy import live

REGION = "eu-west-1"
ACCOUNT = "123456789012"


@dataclass
class Clients:
    ec2: Any
    s3: Any
    kms: Any
    sagemaker: Any
    cfn: Any = None


@pytest.fixture
def aws():
    with mock_aws():
        session = boto3.Session(aws_access_key_id="x", aws_secret_access_key="y", region_name=REGION)
        yield Clients(*(session.client(s) for s in ("ec2", "s3", "kms", "sagemaker")))


def _ctx(clients: Clients, template: dict, physical: dict[str, str]) -> live.LiveContext:
    return live.LiveContext("mlops-dev-network", template, physical, clients, REGION, ACCOUNT)


def _network(aws: Clients) -> tuple[dict, dict[str, str]]:
    vpc = aws.ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnet = aws.ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.0.0/18")["Subnet"]["SubnetId"]
    route_table = aws.ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    group = aws.ec2.create_security_group(GroupName="sm", Description="sm", VpcId=vpc)["GroupId"]
    template = {
        "Resources": {
            "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.20.0.0/16"}},
            "Subnet": {
                "Type": "AWS::EC2::Subnet",
                "Properties": {"VpcId": {"Ref": "Vpc"}, "MapPublicIpOnLaunch": False},
            },
            "S3Endpoint": {
                "Type": "AWS::EC2::VPCEndpoint",
                "Properties": {
                    "ServiceName": {"Fn::Join": ["", ["com.amazonaws.", {"Ref": "AWS::Region"}, ".s3"]]},
                    "VpcEndpointType": "Gateway",
                    "VpcId": {"Ref": "Vpc"},
                    "RouteTableIds": [{"Ref": "RouteTable"}],
                },
            },
            "RouteTable": {"Type": "AWS::EC2::RouteTable", "Properties": {"VpcId": {"Ref": "Vpc"}}},
            "Group": {
                "Type": "AWS::EC2::SecurityGroup",
                "Properties": {
                    "GroupDescription": "sm",
                    "VpcId": {"Ref": "Vpc"},
                    "SecurityGroupEgress": [
                        {"CidrIp": "10.20.0.0/16", "FromPort": 443, "IpProtocol": "tcp", "ToPort": 443}
                    ],
                },
            },
        }
    }
    physical = {"Vpc": vpc, "Subnet": subnet, "RouteTable": route_table, "Group": group}
    return template, physical


def test_a_deleted_vpc_endpoint_is_found_missing_and_its_repair_recreates_it(aws):
    template, physical = _network(aws)
    props = template["Resources"]["S3Endpoint"]["Properties"]
    created = aws.ec2.create_vpc_endpoint(
        VpcId=physical["Vpc"], ServiceName=f"com.amazonaws.{REGION}.s3", VpcEndpointType="Gateway"
    )["VpcEndpoint"]["VpcEndpointId"]
    physical["S3Endpoint"] = created
    assert live.read_vpc_endpoint(_ctx(aws, template, physical), "S3Endpoint", props, created).ok
    aws.ec2.delete_vpc_endpoints(VpcEndpointIds=[created])  # out of band
    reading = live.read_vpc_endpoint(_ctx(aws, template, physical), "S3Endpoint", props, created)
    assert not reading.ok and reading.detail == f"com.amazonaws.{REGION}.s3 in {physical['Vpc']}: missing"
    assert reading.repair is not None and reading.repair().startswith("re-created VPC endpoint")
    again = live.read_vpc_endpoint(_ctx(aws, template, physical), "S3Endpoint", props, created)
    assert again.ok, again.detail


def test_a_subnet_that_maps_public_ips_differs_and_is_reset(aws):
    template, physical = _network(aws)
    props = template["Resources"]["Subnet"]["Properties"]
    aws.ec2.modify_subnet_attribute(SubnetId=physical["Subnet"], MapPublicIpOnLaunch={"Value": True})
    reading = live.read_subnet(_ctx(aws, template, physical), "Subnet", props, physical["Subnet"])
    assert not reading.ok and "MapPublicIpOnLaunch: expected False → actual True" in reading.detail
    reading.repair()
    assert live.read_subnet(_ctx(aws, template, physical), "Subnet", props, physical["Subnet"]).ok


def test_open_egress_the_template_does_not_allow_is_named_and_revoked(aws):
    template, physical = _network(aws)
    props = template["Resources"]["Group"]["Properties"]
    # A fresh group has AWS's default allow-all egress: exactly what the template does not declare.
    reading = live.read_security_group(_ctx(aws, template, physical), "Group", props, physical["Group"])
    assert not reading.ok
    assert "egress not in the template: all all → 0.0.0.0/0" in reading.detail
    assert "egress missing: tcp 443 → 10.20.0.0/16" in reading.detail
    reading.repair()
    after = live.read_security_group(_ctx(aws, template, physical), "Group", props, physical["Group"])
    assert after.ok, after.detail


def test_a_group_declared_without_egress_expects_cloudformations_allow_all(aws):
    template, physical = _network(aws)
    props = {"GroupDescription": "sm", "VpcId": {"Ref": "Vpc"}}
    assert live.read_security_group(_ctx(aws, template, physical), "Group", props, physical["Group"]).ok


def test_a_bucket_without_its_public_access_block_or_encryption_differs_and_is_repaired(aws):
    aws.s3.create_bucket(Bucket="mlops-dev-artifacts", CreateBucketConfiguration={"LocationConstraint": REGION})
    key = aws.kms.create_key()["KeyMetadata"]["KeyId"]
    props = {
        "PublicAccessBlockConfiguration": {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        },
        "BucketEncryption": {
            "ServerSideEncryptionConfiguration": [
                {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": {"Ref": "Key"}}}
            ]
        },
    }
    template = {"Resources": {"Bucket": {"Type": "AWS::S3::Bucket", "Properties": props}}}
    ctx = _ctx(aws, template, {"Bucket": "mlops-dev-artifacts", "Key": key})
    aws.s3.delete_bucket_encryption(Bucket="mlops-dev-artifacts")
    reading = live.read_bucket(ctx, "Bucket", props, "mlops-dev-artifacts")
    assert not reading.ok
    assert "public access block BlockPublicAcls, BlockPublicPolicy" in reading.detail
    assert "default encryption: expected aws:kms → actual None" in reading.detail
    reading.repair()
    assert live.read_bucket(ctx, "Bucket", props, "mlops-dev-artifacts").ok
    rule = aws.s3.get_bucket_encryption(Bucket="mlops-dev-artifacts")["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] == key


def test_key_rotation_turned_off_out_of_band_is_found_and_turned_back_on(aws):
    key = aws.kms.create_key()["KeyMetadata"]["KeyId"]
    props = {"EnableKeyRotation": True}
    ctx = _ctx(aws, {"Resources": {"Key": {"Type": "AWS::KMS::Key", "Properties": props}}}, {"Key": key})
    reading = live.read_kms_key(ctx, "Key", props, key)
    assert not reading.ok and "rotation: expected True → actual False" in reading.detail
    reading.repair()
    assert live.read_kms_key(ctx, "Key", props, key).ok


def test_a_deleted_sagemaker_endpoint_is_missing_and_recreated_on_its_config(aws):
    sm = aws.sagemaker
    sm.create_model(
        ModelName="m",
        PrimaryContainer={"Image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/x:1"},
        ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/sm",
    )
    sm.create_endpoint_config(
        EndpointConfigName="cfg",
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": "m", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
        ],
    )
    sm.create_endpoint(EndpointName="mlops-dev-endpoint", EndpointConfigName="cfg")
    template = {
        "Resources": {
            "Config": {
                "Type": "AWS::SageMaker::EndpointConfig",
                "Properties": {
                    "ProductionVariants": [
                        {"VariantName": "AllTraffic", "ModelName": {"Ref": "Model"}, "InitialInstanceCount": 1}
                    ]
                },
            },
            "Endpoint": {"Type": "AWS::SageMaker::Endpoint", "Properties": {"EndpointConfigName": {"Ref": "Config"}}},
        }
    }
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/mlops-dev-endpoint"
    ctx = _ctx(aws, template, {"Config": "cfg", "Model": "m", "Endpoint": arn})
    props = template["Resources"]["Endpoint"]["Properties"]
    assert live.read_endpoint(ctx, "Endpoint", props, arn).ok
    sm.delete_endpoint(EndpointName="mlops-dev-endpoint")
    reading = live.read_endpoint(ctx, "Endpoint", props, arn)
    assert not reading.ok and reading.detail == "mlops-dev-endpoint: missing"
    assert reading.repair() == "re-created endpoint mlops-dev-endpoint on cfg"
    assert live.read_endpoint(ctx, "Endpoint", props, arn).ok


def test_an_endpoint_config_with_another_instance_count_is_named(aws):
    sm = aws.sagemaker
    sm.create_model(
        ModelName="m",
        PrimaryContainer={"Image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/x:1"},
        ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/sm",
    )
    variant = {"VariantName": "AllTraffic", "ModelName": "m", "InstanceType": "ml.m5.large"}
    sm.create_endpoint_config(EndpointConfigName="cfg", ProductionVariants=[variant | {"InitialInstanceCount": 3}])
    sm.create_endpoint(EndpointName="ep", EndpointConfigName="cfg")
    template = {
        "Resources": {
            "Config": {
                "Type": "AWS::SageMaker::EndpointConfig",
                "Properties": {"ProductionVariants": [variant | {"InitialInstanceCount": 1}]},
            },
            "Endpoint": {"Type": "AWS::SageMaker::Endpoint", "Properties": {"EndpointConfigName": {"Ref": "Config"}}},
        }
    }
    ctx = _ctx(aws, template, {"Config": "cfg", "Endpoint": "ep"})
    reading = live.read_endpoint(ctx, "Endpoint", template["Resources"]["Endpoint"]["Properties"], "ep")
    assert not reading.ok and "variant AllTraffic: expected ('m', 1) → actual ('m', 3)" in reading.detail


def test_drift_detection_is_started_polled_and_reported_with_property_paths():
    cfn = boto3.Session(aws_access_key_id="x", aws_secret_access_key="y", region_name=REGION).client("cloudformation")
    stub = Stubber(cfn)
    stub.add_response("detect_stack_drift", {"StackDriftDetectionId": "d-1"}, {"StackName": "mlops-dev-network"})
    status = {
        "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/mlops-dev-network/1",
        "StackDriftDetectionId": "d-1",
        "Timestamp": "2026-12-05T00:00:00Z",
    }
    stub.add_response(
        "describe_stack_drift_detection_status",
        status | {"DetectionStatus": "DETECTION_IN_PROGRESS"},
        {"StackDriftDetectionId": "d-1"},
    )
    stub.add_response(
        "describe_stack_drift_detection_status",
        status
        | {"DetectionStatus": "DETECTION_COMPLETE", "StackDriftStatus": "DRIFTED", "DriftedStackResourceCount": 2},
        {"StackDriftDetectionId": "d-1"},
    )
    drift = {
        "StackId": status["StackId"],
        "Timestamp": "2026-12-05T00:00:00Z",
        "PhysicalResourceId": "sg-1",
    }
    stub.add_response(
        "describe_stack_resource_drifts",
        {
            "StackResourceDrifts": [
                drift
                | {
                    "LogicalResourceId": "SageMakerSecurityGroup",
                    "ResourceType": "AWS::EC2::SecurityGroup",
                    "StackResourceDriftStatus": "MODIFIED",
                    "ExpectedProperties": "{}",
                    "ActualProperties": "{}",
                    "PropertyDifferences": [
                        {
                            "PropertyPath": "/SecurityGroupEgress/1/CidrIp",
                            "ExpectedValue": "10.20.0.0/16",
                            "ActualValue": "0.0.0.0/0",
                            "DifferenceType": "NOT_EQUAL",
                        }
                    ],
                },
                drift
                | {
                    "LogicalResourceId": "VpcStsEndpoint",
                    "ResourceType": "AWS::EC2::VPCEndpoint",
                    "StackResourceDriftStatus": "DELETED",
                    "PhysicalResourceId": "vpce-1",
                },
            ]
        },
        {"StackName": "mlops-dev-network", "StackResourceDriftStatusFilters": ["MODIFIED", "DELETED"]},
    )
    with stub:
        drifts, incomplete = live.detect_drift(cfn, "mlops-dev-network", delay=0)
    stub.assert_no_pending_responses()
    assert incomplete is None
    assert [d.describe() for d in drifts] == [
        "SageMakerSecurityGroup (AWS::EC2::SecurityGroup) MODIFIED:"
        " /SecurityGroupEgress/1/CidrIp: 10.20.0.0/16 → 0.0.0.0/0 (NOT_EQUAL)",
        "VpcStsEndpoint (AWS::EC2::VPCEndpoint) DELETED",
    ]


def test_a_partly_failed_drift_detection_reports_why_and_what_it_found():
    cfn = boto3.Session(aws_access_key_id="x", aws_secret_access_key="y", region_name=REGION).client("cloudformation")
    stub = Stubber(cfn)
    stub.add_response("detect_stack_drift", {"StackDriftDetectionId": "d-2"}, {"StackName": "s"})
    stub.add_response(
        "describe_stack_drift_detection_status",
        {
            "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/s/1",
            "StackDriftDetectionId": "d-2",
            "DetectionStatus": "DETECTION_FAILED",
            "DetectionStatusReason": "not authorized to perform ec2:DescribeVpcEndpoints",
            "Timestamp": "2026-12-05T00:00:00Z",
        },
        {"StackDriftDetectionId": "d-2"},
    )
    stub.add_response(
        "describe_stack_resource_drifts",
        {"StackResourceDrifts": []},
        {"StackName": "s", "StackResourceDriftStatusFilters": ["MODIFIED", "DELETED"]},
    )
    with stub:
        drifts, incomplete = live.detect_drift(cfn, "s", delay=0)
    assert drifts == [] and incomplete == "not authorized to perform ec2:DescribeVpcEndpoints"


def test_an_object_overwritten_with_forged_sha256_metadata_is_hashed_for_what_it_holds(aws):
    import hashlib

    aws.s3.create_bucket(Bucket="mlops-dev-artifacts", CreateBucketConfiguration={"LocationConstraint": REGION})
    good = b"print('the reviewed step')\n"
    aws.s3.put_object(Bucket="mlops-dev-artifacts", Key="assets/a/step.py", Body=good, ChecksumAlgorithm="SHA256")
    assert live.object_sha256(aws.s3, "mlops-dev-artifacts", "assets/a/step.py")[:2] == (
        hashlib.sha256(good).hexdigest(),
        "S3's ChecksumSHA256",
    )
    forged = b"import os; os.system('exfiltrate')\n"
    for extra in ({}, {"ChecksumAlgorithm": "SHA256"}):  # without a checksum, or with S3's own of the bad bytes
        aws.s3.put_object(
            Bucket="mlops-dev-artifacts",
            Key="assets/a/step.py",
            Body=forged,
            Metadata={"sha256": hashlib.sha256(good).hexdigest()},  # the label claims the reviewed bytes
            **extra,
        )
        digest, how, _ = live.object_sha256(aws.s3, "mlops-dev-artifacts", "assets/a/step.py")
        assert digest == hashlib.sha256(forged).hexdigest(), how
