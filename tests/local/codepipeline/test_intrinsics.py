"""Intrinsics in the template: what they resolve to, and the placeholder when they cannot be resolved here."""

from __future__ import annotations

import pytest

from gitops.local.codepipeline import PipelineRunnerError, read_pipeline
from gitops.local.codepipeline.intrinsics import Intrinsics


def test_unresolvable_intrinsics_become_readable_placeholders(pipeline):
    deploy = read_pipeline(pipeline.template(), pipeline.path).stage("Deploy").actions[0]  # no pseudo parameters
    env = {var.name: var.value for var in deploy.env_vars}
    assert env["ARTIFACT_BUCKET"] == "mlops-dev-artifacts-{{AWS::AccountId}}-{{AWS::Region}}"


TEMPLATE = {
    "Parameters": {
        "Env": {"Type": "String", "Default": "dev"},
        "Image": {"Type": "AWS::SSM::Parameter::Value<String>", "Default": "/images/latest"},
    },
    "Resources": {
        "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": {"Fn::Sub": "data-${Env}"}}},
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {}},
    },
}


def test_sub_join_select_and_no_value_are_evaluated():
    intr = Intrinsics(TEMPLATE, {}, {"AWS::Region": "eu-west-1"})
    assert intr.resolve({"Fn::Sub": "${Bucket}/${!Literal}/${AWS::Region}"}, "here") == "data-dev/${Literal}/eu-west-1"
    assert intr.resolve({"Fn::Join": ["-", ["x", {"Ref": "Env"}, {"Ref": "AWS::Partition"}]]}, "here") == "x-dev-aws"
    assert intr.resolve({"Fn::Select": [1, ["a", {"Ref": "Env"}]]}, "here") == "dev"
    assert intr.resolve(["a", {"Ref": "AWS::NoValue"}], "here") == ["a"]
    assert Intrinsics(TEMPLATE, {"Env": "prod"}, {}).resolve({"Ref": "Bucket"}, "here") == "data-prod"


def test_what_is_only_known_at_deploy_time_stays_a_placeholder():
    intr = Intrinsics(TEMPLATE, {}, {})
    assert intr.resolve({"Ref": "Image"}, "here") == "{{Ref:Image}}"  # an SSM parameter's Default is a name
    assert intr.resolve({"Ref": "Queue"}, "here") == "{{Ref:Queue}}"
    assert intr.resolve({"Fn::GetAtt": ["Queue", "Arn"]}, "here") == "{{GetAtt:Queue.Arn}}"
    assert intr.resolve({"Fn::ImportValue": "shared-vpc"}, "here") == "{{ImportValue:shared-vpc}}"


def test_a_reference_to_nothing_names_where_it_is():
    with pytest.raises(PipelineRunnerError, match=r"^here: Ref to 'Nope', which is not a parameter or resource$"):
        Intrinsics(TEMPLATE, {}, {}).resolve({"Ref": "Nope"}, "here")
    with pytest.raises(PipelineRunnerError, match=r"^here: Fn::Select index 5 out of \['a'\]$"):
        Intrinsics(TEMPLATE, {}, {}).resolve({"Fn::Select": [5, ["a"]]}, "here")
