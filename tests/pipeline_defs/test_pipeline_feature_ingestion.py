"""The feature ingestion pipeline definition: built offline for every stage, checked structurally."""

from __future__ import annotations

import json

import pytest

from gitops.config import kms_alias_arn
from gitops.release.pipelines import canonical_json

NAME = "feature_ingestion"
STAGES = ("dev", "prod")


@pytest.fixture(scope="module", params=STAGES)
def built(request, built_pipeline):
    return built_pipeline(NAME, request.param)


@pytest.fixture(scope="module")
def step(built) -> dict:
    (only,) = built.definition["Steps"]
    return only


def s3_input(step: dict, name: str) -> dict:
    return next(i["S3Input"] for i in step["Arguments"]["ProcessingInputs"] if i["InputName"] == name)


def output(step: dict, name: str) -> dict:
    outputs = step["Arguments"]["ProcessingOutputConfig"]["Outputs"]
    return next(o["S3Output"] for o in outputs if o["OutputName"] == name)


def asset_bytes(built, uri: str) -> bytes:
    prefix = f"s3://{built.stage.artifact_bucket_name}/"
    assert uri.startswith(prefix + "assets/"), uri
    return built.registry.assets[uri[len(prefix) :]].data


def test_one_ingestion_processing_step(built, step):
    assert built.definition["Version"] == "2020-12-01"
    assert (step["Name"], step["Type"]) == ("IngestFeatures", "Processing")
    assert "DependsOn" not in step


def test_parameters(built):
    stage = built.stage
    params = {p["Name"]: (p["Type"], p["DefaultValue"]) for p in built.definition["Parameters"]}
    assert params == {
        "InputCsvUri": ("String", f"s3://{stage.artifact_bucket_name}/incoming/customers.csv"),
        "ProcessingInstanceType": ("String", stage.training.processing_instance_type),
        "BatchSize": ("Integer", 100),
    }


def test_reads_the_csv_parameter_and_targets_the_stage_feature_group(built, step):
    args = step["Arguments"]
    data = s3_input(step, "data")
    assert data["S3Uri"] == {"Get": "Parameters.InputCsvUri"}
    assert data["LocalPath"] == "/opt/ml/processing/input/data"
    assert args["ProcessingResources"]["ClusterConfig"]["InstanceType"] == {"Get": "Parameters.ProcessingInstanceType"}
    argv = args["AppSpecification"]["ContainerArguments"]
    assert argv[argv.index("--input-dir") + 1] == data["LocalPath"]
    assert argv[argv.index("--feature-group-name") + 1] == built.stage.feature_group_name
    assert argv[argv.index("--batch-size") + 1] == {"Std:Join": {"On": "", "Values": [{"Get": "Parameters.BatchSize"}]}}
    assert args["Environment"]["FEATURE_GROUP_NAME"] == built.stage.feature_group_name
    assert args["Environment"]["AWS_DEFAULT_REGION"] == built.stage.region
    assert args["RoleArn"] == built.stage.sagemaker_execution_role_arn


def test_outputs_report_and_the_export_the_training_pipeline_reads(built, step, built_pipeline):
    argv = step["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert argv[argv.index("--report-dir") + 1] == output(step, "report")["LocalPath"]
    export = output(step, "export")
    assert argv[argv.index("--export-dir") + 1] == export["LocalPath"]
    assert export["S3Uri"] == {
        "Std:Join": {
            "On": "/",
            "Values": [
                "s3:/",
                built.stage.artifact_bucket_name,
                "datasets",
                "customers",
                {"Get": "Execution.PipelineExecutionId"},
            ],
        }
    }
    # Training does not read the exports: it reads the offline store through Athena.
    training = built_pipeline("training", built.stage.stage).definition
    assert "datasets/customers" not in json.dumps(training)


def test_code_and_schema_come_from_registered_assets(built, step, repo_root):
    defs = repo_root / "pipeline_defs"
    assert asset_bytes(built, s3_input(step, "code")["S3Uri"]) == (defs / NAME / "steps" / "ingest.py").read_bytes()
    schema = s3_input(step, "schema")
    assert asset_bytes(built, schema["S3Uri"]) == (defs / "features.py").read_bytes()
    assert step["Arguments"]["Environment"]["PYTHONPATH"] == schema["LocalPath"]
    assert step["Arguments"]["AppSpecification"]["ContainerEntrypoint"] == [
        "python3",
        "/opt/ml/processing/input/code/ingest.py",
    ]
    assert {asset.filename for asset in built.registry.assets.values()} == {"ingest.py", "features.py"}


def test_encrypted_with_the_stage_key_and_network_for_the_feature_store(built, step):
    key = kms_alias_arn(built.stage)
    args = step["Arguments"]
    assert args["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == key
    assert args["ProcessingOutputConfig"]["KmsKeyId"] == key
    # PutRecord needs the Feature Store runtime endpoint: no network isolation for this job.
    assert args["NetworkConfig"] == {"EnableNetworkIsolation": False, "EnableInterContainerTrafficEncryption": True}


def test_job_request_matches_the_sagemaker_api(step, sagemaker_request_errors):
    assert sagemaker_request_errors(step) == ""


def test_build_is_deterministic(built, build_pipeline_def):
    again = build_pipeline_def(NAME, built.stage.stage)
    assert canonical_json(again.definition) == canonical_json(built.definition)
    assert set(again.registry.assets) == set(built.registry.assets)
