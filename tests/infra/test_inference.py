"""Inference stack: the endpoint of the pinned model's parameters, isolated, encrypted, scaled, alarmed, blue/green."""

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
def test_endpoint_exists_only_with_a_pinned_model(synth, stage):
    template = synth.template(stage, "Inference")
    for name, default in (("ModelDataUrl", ""), ("ModelImage", "none"), ("ModelSha256", ""), ("ModelPackageArn", "")):
        parameter = template["Parameters"][name]
        assert (parameter["Type"], parameter["Default"]) == ("String", default), name
    condition = template["Conditions"]["HasModel"]
    assert condition == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ModelDataUrl"}, ""]}]}
    for logical_id, resource in template["Resources"].items():
        if not resource["Type"].startswith("AWS::SNS::"):
            assert resource.get("Condition") == "HasModel", logical_id


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_model_and_endpoint_are_isolated_and_encrypted(synth, stage):
    cfg = cfg_of(stage)
    model = synth.one(stage, "Inference", "AWS::SageMaker::Model")["Properties"]
    assert model["EnableNetworkIsolation"] is True
    # The pinned bytes and image, never a package name a registry would resolve.
    container = model["PrimaryContainer"]
    assert "ModelPackageName" not in container
    assert (container["ModelDataUrl"], container["Image"]) == ({"Ref": "ModelDataUrl"}, {"Ref": "ModelImage"})
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
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
    tags = {t["Key"]: t["Value"] for t in endpoint["Tags"]}
    assert tags["gitops:model-sha256"] == {"Ref": "ModelSha256"}


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_a_new_model_shifts_traffic_by_canary_and_rolls_back_on_the_endpoint_alarms(synth, stage):
    cfg = cfg_of(stage)
    endpoint = synth.one(stage, "Inference", "AWS::SageMaker::Endpoint")["Properties"]
    policy = endpoint["DeploymentConfig"]["BlueGreenUpdatePolicy"]
    routing = policy["TrafficRoutingConfiguration"]
    assert routing["Type"] == "CANARY" and routing["CanarySize"] == {"Type": "CAPACITY_PERCENT", "Value": 10}
    rollback = endpoint["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]
    alarms = {
        a["Properties"]["AlarmName"] for a in synth.resources(stage, "Inference", "AWS::CloudWatch::Alarm").values()
    }
    assert {a["AlarmName"] for a in rollback} == {
        f"{cfg.endpoint_name}-5xx-errors",
        f"{cfg.endpoint_name}-model-latency",
    }
    assert {a["AlarmName"] for a in rollback} <= alarms


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
