"""Inference stack: the endpoint of the ModelPackageArn parameter, isolated, encrypted, scaled and alarmed."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match, Template
from infra_synth import (
    STAGE_NAMES,
    cfg_of,
)

pytestmark = pytest.mark.integration  # every test here needs the CDK app (tests/infra/conftest.py)

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
