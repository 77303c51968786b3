"""The pipeline-jobs scanner: each rule on a job that fails it and one that passes, per job kind."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from gitops.release.pipelines import canonical_json
from gitops.scan.errors import ScanError
from gitops.scan.pipeline_files import PipelineRef, release_pipelines
from gitops.scan.pipeline_jobs import (
    INTER_CONTAINER,
    ISOLATION,
    OUTPUT_KMS,
    RULES,
    VOLUME_KMS,
    VPC,
    coverage_key,
    scan_pipelines,
)

KEY = "arn:aws:kms:eu-west-1:111111111111:alias/mlops-dev"
VPC_CONFIG = {"Subnets": ["subnet-1"], "SecurityGroupIds": ["sg-1"]}
PROCESSING = {
    "NetworkConfig": {
        "EnableNetworkIsolation": True,
        "EnableInterContainerTrafficEncryption": True,
        "VpcConfig": VPC_CONFIG,
    },
    "ProcessingOutputConfig": {"KmsKeyId": KEY, "Outputs": [{"OutputName": "out"}]},
    "ProcessingResources": {"ClusterConfig": {"InstanceCount": 2, "VolumeKmsKeyId": KEY}},
}
TRAINING = {
    "EnableNetworkIsolation": True,
    "EnableInterContainerTrafficEncryption": True,
    "VpcConfig": VPC_CONFIG,
    "OutputDataConfig": {"KmsKeyId": KEY, "S3OutputPath": "s3://b/o"},
    "ResourceConfig": {"InstanceCount": {"Get": "Parameters.Count"}, "VolumeKmsKeyId": KEY},
}
TRANSFORM = {"TransformResources": {"VolumeKmsKeyId": KEY}, "TransformOutput": {"KmsKeyId": KEY}}
MODEL = {"EnableNetworkIsolation": True, "VpcConfig": VPC_CONFIG}


def pipeline(*steps: dict, name: str = "p") -> PipelineRef:
    body = {"Version": "2020-12-01", "Steps": list(steps)}
    text = canonical_json(body).decode()
    return PipelineRef("dev", name, f"stages/dev/pipelines/{name}.json", Path(name), body, text.splitlines())


def step(kind: str, arguments: dict, name: str = "S") -> dict:
    return {"Name": name, "Type": kind, "Arguments": arguments}


def without(arguments: dict, *path: str, value: object = ...) -> dict:
    """A copy with the setting at path removed (or set to value)."""
    changed = copy.deepcopy(arguments)
    node = changed
    for key in path[:-1]:
        node = node[key]
    if value is ...:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return changed


def rules_failed(*steps: dict) -> set[str]:
    return {f.rule_id for f in scan_pipelines([pipeline(*steps)]).findings}


@pytest.mark.parametrize(("kind", "arguments"), [("Processing", PROCESSING), ("Training", TRAINING)])
def test_a_job_with_every_setting_passes_every_rule(kind, arguments):
    run = scan_pipelines([pipeline(step(kind, arguments))])
    assert run.findings == [] and run.passed == 5


@pytest.mark.parametrize(
    ("kind", "arguments", "path", "value", "rule"),
    [
        ("Processing", PROCESSING, ("NetworkConfig", "EnableNetworkIsolation"), False, ISOLATION),
        ("Processing", PROCESSING, ("NetworkConfig", "EnableNetworkIsolation"), {"Get": "Parameters.Iso"}, ISOLATION),
        ("Processing", PROCESSING, ("NetworkConfig", "VpcConfig"), ..., VPC),
        ("Processing", PROCESSING, ("NetworkConfig", "VpcConfig", "Subnets"), [], VPC),
        ("Processing", PROCESSING, ("ProcessingResources", "ClusterConfig", "VolumeKmsKeyId"), ..., VOLUME_KMS),
        ("Processing", PROCESSING, ("ProcessingOutputConfig", "KmsKeyId"), "", OUTPUT_KMS),
        ("Processing", PROCESSING, ("NetworkConfig", "EnableInterContainerTrafficEncryption"), ..., INTER_CONTAINER),
        ("Training", TRAINING, ("EnableNetworkIsolation",), ..., ISOLATION),
        ("Training", TRAINING, ("VpcConfig",), ..., VPC),
        ("Training", TRAINING, ("ResourceConfig", "VolumeKmsKeyId"), ..., VOLUME_KMS),
        ("Training", TRAINING, ("OutputDataConfig", "KmsKeyId"), ..., OUTPUT_KMS),
        # The instance count is a parameter: it may be more than one, so encryption is needed.
        ("Training", TRAINING, ("EnableInterContainerTrafficEncryption",), False, INTER_CONTAINER),
        ("Transform", TRANSFORM, ("TransformResources", "VolumeKmsKeyId"), ..., VOLUME_KMS),
        ("Transform", TRANSFORM, ("TransformOutput", "KmsKeyId"), ..., OUTPUT_KMS),
        ("Model", MODEL, ("EnableNetworkIsolation",), ..., ISOLATION),
        ("Model", MODEL, ("VpcConfig",), ..., VPC),
    ],
)
def test_each_missing_setting_fails_exactly_its_rule(kind, arguments, path, value, rule):
    assert rules_failed(step(kind, arguments)) == set()
    assert rules_failed(step(kind, without(arguments, *path, value=value))) == {rule}


def test_one_instance_needs_no_inter_container_encryption():
    single = without(PROCESSING, "ProcessingResources", "ClusterConfig", "InstanceCount", value=1)
    plain = without(single, "NetworkConfig", "EnableInterContainerTrafficEncryption")
    assert rules_failed(step("Processing", plain)) == set()
    groups = without(TRAINING, "ResourceConfig", "InstanceCount")
    groups["ResourceConfig"]["InstanceGroups"] = [{"InstanceCount": 1}, {"InstanceCount": 1}]
    assert rules_failed(step("Training", without(groups, "EnableInterContainerTrafficEncryption"))) == {INTER_CONTAINER}


def test_jobs_inside_a_condition_and_tuning_definitions_are_scanned():
    nested = step("Training", without(TRAINING, "EnableNetworkIsolation"), name="Inner")
    condition = step("Condition", {"Conditions": [], "IfSteps": [nested], "ElseSteps": []}, name="Check")
    tuning = step("Tuning", {"TrainingJobDefinition": without(TRAINING, "VpcConfig")}, name="Tune")
    run = scan_pipelines([pipeline(condition, tuning)])
    assert {(f.step, f.rule_id) for f in run.findings} == {("Inner", ISOLATION), ("Tune", VPC)}


def test_a_finding_names_the_pipeline_the_step_and_its_line():
    ref = pipeline(step("Processing", {}, name="Bare"), name="training")
    run = scan_pipelines([ref])
    assert {f.rule_id for f in run.findings} == {ISOLATION, VPC, VOLUME_KMS, INTER_CONTAINER}  # no outputs: no KMS
    finding = next(f for f in run.findings if f.rule_id == VPC)
    assert finding.target == "dev/pipelines/training/Bare" and finding.group == "dev/pipelines/training"
    assert "pipeline training, step Bare (Processing)" in finding.message
    assert ref.lines[finding.line - 1].strip().startswith('"Name": "Bare"')
    assert finding.to_dict()["pipeline"] == "training" and finding.to_dict()["step"] == "Bare"


def test_coverage_lists_the_rules_per_step_kind():
    run = scan_pipelines([pipeline(step("Transform", TRANSFORM), step("Model", MODEL, name="M"))])
    assert run.rules == sorted(RULES)
    assert run.coverage == {
        coverage_key("Transform"): sorted([VOLUME_KMS, OUTPUT_KMS]),
        coverage_key("Model"): sorted([ISOLATION, VPC]),
    }


def test_steps_that_run_no_job_are_not_checked():
    fail = step("Fail", {"ErrorMessage": "no"})
    register = step("RegisterModel", {"ModelPackageGroupName": "g"}, name="Register")
    assert scan_pipelines([pipeline(fail, register)]).findings == []


def test_a_pipeline_file_that_is_not_a_definition_is_a_clear_error(tmp_path):
    (tmp_path / "stages/dev/pipelines").mkdir(parents=True)
    (tmp_path / "stages/dev/pipelines/p.json").write_text(json.dumps({"Steps": "none"}))
    with pytest.raises(ScanError, match=r"stages/dev/pipelines/p\.json: not a SageMaker pipeline definition"):
        release_pipelines(tmp_path, {"stages/dev/pipelines/p.json": "x"})
