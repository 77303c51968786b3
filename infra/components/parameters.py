"""Values one stack of a stage publishes and another reads, through SSM parameters with fixed names.

The stacks of a stage never export or import CloudFormation values: each can be deployed on its
own, CloudFormation resolves the parameter at deploy time, and synth needs no lookup.
"""

from __future__ import annotations

from aws_cdk import aws_kms as kms
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from gitops.config import StageConfig
from infra import names


def publish(scope: Construct, cfg: StageConfig, key: str, value: str, description: str) -> ssm.StringParameter:
    return ssm.StringParameter(
        scope,
        "Param" + _id(key),
        parameter_name=names.ssm_parameter_name(cfg, key),
        string_value=value,
        description=description,
    )


def publish_list(
    scope: Construct, cfg: StageConfig, key: str, values: list[str], description: str
) -> ssm.StringListParameter:
    return ssm.StringListParameter(
        scope,
        "Param" + _id(key),
        parameter_name=names.ssm_parameter_name(cfg, key),
        string_list_value=values,
        description=description,
    )


def read(scope: Construct, cfg: StageConfig, key: str) -> str:
    return ssm.StringParameter.value_for_string_parameter(scope, names.ssm_parameter_name(cfg, key))


def read_list(scope: Construct, cfg: StageConfig, key: str) -> list[str]:
    return ssm.StringListParameter.value_for_typed_list_parameter(scope, names.ssm_parameter_name(cfg, key))


def stage_key(scope: Construct, cfg: StageConfig) -> kms.IKey:
    """The Base stack's customer-managed key, as seen from another stack of the stage."""
    return kms.Key.from_key_arn(scope, "StageKey", read(scope, cfg, names.KEY_ARN))


def _id(key: str) -> str:
    return "".join(part.capitalize() for part in key.replace("/", "-").split("-"))
