"""Inference stack: the realtime endpoint of the pinned model, autoscaled, alarmed, updated blue/green.

Deploy passes the release's model pin (model.json) as parameters: the stage's own content-addressed
copy of the artifact, the image by digest, its sha256 and the package it came from. Nothing here
or in deploy asks a registry which model is newest. While the pin is empty (`model: null`) the
stack holds only the alarm topic.
"""

from __future__ import annotations

from aws_cdk import CfnCondition, CfnParameter, CfnResource, CfnTag, Fn
from aws_cdk import aws_applicationautoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from gitops.config import StageConfig
from gitops.deploy.model_parameters import (
    MODEL_DATA_PARAMETER,
    MODEL_IMAGE_PARAMETER,
    MODEL_PACKAGE_PARAMETER,
    MODEL_PACKAGE_TAG,
    MODEL_PARAMETER_DEFAULTS,
    MODEL_PARAMETERS,
    MODEL_SHA256_PARAMETER,
    MODEL_SHA256_TAG,
)
from infra import names
from infra.components import parameters
from infra.components.topics import encrypted_topic
from infra.roles import deploy_statements as deploy
from infra.roles.arns import StageArns
from infra.roles.statements import allow, in_region
from infra.stacks.stage_stack import StageInputs, StageStack

VARIANT = "AllTraffic"
DATA_CAPTURE_PREFIX = "data-capture"
# The alarms a blue/green update watches: any of them firing during the shift rolls it back.
ROLLBACK_ALARMS = ("5xx-errors", "model-latency")


def _model_tags(pinned: dict[str, CfnParameter]) -> list[CfnTag]:
    """Which pinned model a resource serves, readable on the live resource (verify reads them)."""
    return [
        CfnTag(key=MODEL_SHA256_TAG, value=pinned[MODEL_SHA256_PARAMETER].value_as_string),
        CfnTag(key=MODEL_PACKAGE_TAG, value=pinned[MODEL_PACKAGE_PARAMETER].value_as_string),
    ]


def _blue_green(cfg: StageConfig) -> sagemaker.CfnEndpoint.DeploymentConfigProperty:
    """A new model takes 10% of capacity first; an endpoint alarm during the shift rolls it back."""
    return sagemaker.CfnEndpoint.DeploymentConfigProperty(
        blue_green_update_policy=sagemaker.CfnEndpoint.BlueGreenUpdatePolicyProperty(
            traffic_routing_configuration=sagemaker.CfnEndpoint.TrafficRoutingConfigProperty(
                type="CANARY",
                canary_size=sagemaker.CfnEndpoint.CapacitySizeProperty(type="CAPACITY_PERCENT", value=10),
                wait_interval_in_seconds=300,
            ),
            termination_wait_in_seconds=300,
            maximum_execution_timeout_in_seconds=3600,
        ),
        auto_rollback_configuration=sagemaker.CfnEndpoint.AutoRollbackConfigProperty(
            alarms=[sagemaker.CfnEndpoint.AlarmProperty(alarm_name=names.alarm_name(cfg, a)) for a in ROLLBACK_ALARMS]
        ),
    )


class InferenceStack(StageStack):
    def __init__(self, scope: Construct, id: str, *, inputs: StageInputs, **kwargs) -> None:
        super().__init__(scope, id, inputs=inputs, **kwargs)
        cfg = inputs.cfg
        key = parameters.stage_key(self, cfg)
        pinned = {
            name: CfnParameter(
                self, name, type="String", default=MODEL_PARAMETER_DEFAULTS.get(name, ""), description=description
            )
            for name, description in MODEL_PARAMETERS.items()
        }
        data_url = pinned[MODEL_DATA_PARAMETER].value_as_string
        has_model = CfnCondition(self, "HasModel", expression=Fn.condition_not(Fn.condition_equals(data_url, "")))
        topic = encrypted_topic(
            self,
            "AlarmTopic",
            name=names.alarm_topic_name(cfg),
            display_name=f"{cfg.prefix} endpoint alarms",
            key=key,
            email=None,  # approvers are not on call; operators subscribe their own channel
        )

        serving = Construct(self, "Serving")
        model = sagemaker.CfnModel(
            serving,
            "Model",
            execution_role_arn=cfg.sagemaker_execution_role_arn,
            # The pinned bytes and image, not a package: prod never reads dev's registry or bucket.
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=pinned[MODEL_IMAGE_PARAMETER].value_as_string,
                model_data_url=data_url,
                environment={
                    # The serving code is inside model.tar.gz (code/inference.py): no download needed.
                    "SAGEMAKER_PROGRAM": "inference.py",
                    "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                    "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
                    "SAGEMAKER_REGION": cfg.region,
                },
            ),
            tags=_model_tags(pinned),
            enable_network_isolation=True,
            vpc_config=sagemaker.CfnModel.VpcConfigProperty(
                subnets=parameters.read_list(self, cfg, names.ISOLATED_SUBNET_IDS),
                security_group_ids=[parameters.read(self, cfg, names.SAGEMAKER_SECURITY_GROUP_ID)],
            ),
        )
        endpoint_config = sagemaker.CfnEndpointConfig(
            serving,
            "EndpointConfig",
            kms_key_id=key.key_arn,
            production_variants=[
                sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                    variant_name=VARIANT,
                    model_name=model.attr_model_name,
                    instance_type=cfg.inference.instance_type,
                    initial_instance_count=cfg.inference.initial_instance_count,
                    initial_variant_weight=1,
                )
            ],
            data_capture_config=sagemaker.CfnEndpointConfig.DataCaptureConfigProperty(
                enable_capture=True,
                initial_sampling_percentage=100,
                destination_s3_uri=f"s3://{cfg.artifact_bucket_name}/{DATA_CAPTURE_PREFIX}/{cfg.endpoint_name}",
                kms_key_id=key.key_arn,
                capture_options=[
                    sagemaker.CfnEndpointConfig.CaptureOptionProperty(capture_mode="Input"),
                    sagemaker.CfnEndpointConfig.CaptureOptionProperty(capture_mode="Output"),
                ],
            ),
        )
        endpoint = sagemaker.CfnEndpoint(
            serving,
            "Endpoint",
            endpoint_name=cfg.endpoint_name,
            endpoint_config_name=endpoint_config.attr_endpoint_config_name,
            deployment_config=_blue_green(cfg),
            tags=_model_tags(pinned),
        )
        _autoscaling(serving, cfg, endpoint)
        _alarms(serving, cfg, topic.topic_arn, endpoint)

        for child in serving.node.find_all():
            if CfnResource.is_cfn_resource(child):
                child.cfn_options.condition = has_model

    @staticmethod
    def deploy_statements(arns: StageArns) -> list[iam.PolicyStatement]:
        """Scalable targets and policies have generated ids: the scaling statement is held to the region."""
        cfg = arns.cfg
        return [
            deploy.pass_stage_roles(arns),  # the model runs as the SageMaker execution role
            allow(
                ["iam:CreateServiceLinkedRole"],
                [f"arn:aws:iam::{cfg.account}:role/aws-service-role/*"],
                {
                    "StringEquals": {
                        "iam:AWSServiceName": [
                            "sagemaker.application-autoscaling.amazonaws.com",
                            "sagemaker.amazonaws.com",
                        ]
                    }
                },
                sid="ServiceLinkedRoles",
            ),
            deploy.create_and_list(arns, ["cloudwatch:GetMetricData"]),
            # SageMaker creates grants on the key for the endpoint's storage volumes and captured data.
            deploy.stage_key(arns, ["kms:CreateGrant", "kms:DescribeKey"]),
            deploy.sagemaker_resources(
                [arns.endpoint, arns.sagemaker("endpoint-config/*"), arns.sagemaker("model/*")],
                [
                    "sagemaker:AddTags",
                    "sagemaker:CreateEndpoint",
                    "sagemaker:CreateEndpointConfig",
                    "sagemaker:CreateModel",
                    "sagemaker:DeleteEndpoint",
                    "sagemaker:DeleteEndpointConfig",
                    "sagemaker:DeleteModel",
                    "sagemaker:DeleteTags",
                    "sagemaker:DescribeEndpoint",
                    "sagemaker:DescribeEndpointConfig",
                    "sagemaker:DescribeModel",
                    "sagemaker:ListTags",
                    "sagemaker:UpdateEndpoint",
                ],
            ),
            deploy.topics(arns),  # the alarm topic
            allow(
                [
                    "cloudwatch:DeleteAlarms",
                    "cloudwatch:DescribeAlarms",
                    "cloudwatch:ListTagsForResource",
                    "cloudwatch:PutMetricAlarm",
                    "cloudwatch:TagResource",
                    "cloudwatch:UntagResource",
                ],
                [arns.any_in_stage("cloudwatch", f"alarm:{cfg.endpoint_name}-")],
                sid="ManageEndpointAlarms",
            ),
            # Application Auto Scaling's own service-linked role creates the target-tracking alarms.
            allow(
                deploy.AUTOSCALING_ACTIONS,
                ["*"],
                in_region(cfg),
                sid="ManageEndpointScaling",
            ),
        ]


def _autoscaling(scope: Construct, cfg: StageConfig, endpoint: sagemaker.CfnEndpoint) -> None:
    target = autoscaling.CfnScalableTarget(
        scope,
        "ScalableTarget",
        service_namespace="sagemaker",
        resource_id=f"endpoint/{cfg.endpoint_name}/variant/{VARIANT}",
        scalable_dimension="sagemaker:variant:DesiredInstanceCount",
        min_capacity=cfg.inference.min_capacity,
        max_capacity=cfg.inference.max_capacity,
    )
    target.add_resource_dependency(endpoint)
    autoscaling.CfnScalingPolicy(
        scope,
        "InvocationsScaling",
        policy_name=f"{cfg.endpoint_name}-invocations-per-instance",
        policy_type="TargetTrackingScaling",
        scaling_target_id=target.ref,
        target_tracking_scaling_policy_configuration=autoscaling.CfnScalingPolicy.TargetTrackingScalingPolicyConfigurationProperty(
            target_value=cfg.inference.target_invocations_per_instance,
            predefined_metric_specification=autoscaling.CfnScalingPolicy.PredefinedMetricSpecificationProperty(
                predefined_metric_type="SageMakerVariantInvocationsPerInstance"
            ),
            scale_in_cooldown=300,
            scale_out_cooldown=60,
        ),
    )


def _alarms(scope: Construct, cfg: StageConfig, topic_arn: str, endpoint: sagemaker.CfnEndpoint) -> None:
    dimensions = [
        cloudwatch.CfnAlarm.DimensionProperty(name="EndpointName", value=cfg.endpoint_name),
        cloudwatch.CfnAlarm.DimensionProperty(name="VariantName", value=VARIANT),
    ]
    alarms = {
        "5xx-errors": dict(
            metric_name="Invocation5XXErrors",
            statistic="Sum",
            comparison_operator="GreaterThanOrEqualToThreshold",
            threshold=1,
            period=300,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            description="The model container returned 5XX errors",
        ),
        "4xx-errors": dict(
            metric_name="Invocation4XXErrors",
            statistic="Sum",
            comparison_operator="GreaterThanOrEqualToThreshold",
            threshold=10,
            period=300,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            description="Many requests were rejected with 4XX errors",
        ),
        # ModelLatency is reported in microseconds.
        "model-latency": dict(
            metric_name="ModelLatency",
            statistic="Average",
            comparison_operator="GreaterThanThreshold",
            threshold=cfg.inference.latency_alarm_ms * 1000,
            period=60,
            evaluation_periods=5,
            datapoints_to_alarm=3,
            description=f"Average model latency above {cfg.inference.latency_alarm_ms} ms",
        ),
    }
    for suffix, spec in alarms.items():
        description = spec.pop("description")
        alarm = cloudwatch.CfnAlarm(
            scope,
            "Alarm" + "".join(part.capitalize() for part in suffix.split("-")),
            alarm_name=names.alarm_name(cfg, suffix),
            alarm_description=f"{cfg.endpoint_name}: {description}",
            namespace="AWS/SageMaker",
            dimensions=dimensions,
            treat_missing_data="notBreaching",
            alarm_actions=[topic_arn],
            ok_actions=[topic_arn],
            **spec,
        )
        alarm.add_resource_dependency(endpoint)
