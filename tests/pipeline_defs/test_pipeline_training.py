"""The training pipeline definition: built offline for every stage, checked structurally."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from gitops.config import kms_alias_arn
from gitops.release.pipelines import canonical_json

NAME = "training"
STAGES = ("dev", "prod")
AUC = {
    "Std:JsonGet": {
        "Path": "binary_classification_metrics.auc.value",
        "PropertyFile": {"Get": "Steps.Evaluate.PropertyFiles.EvaluationReport"},
    }
}


@pytest.fixture(scope="module", params=STAGES)
def built(request, built_pipeline):
    return built_pipeline(NAME, request.param)


def steps_by_name(definition: dict) -> dict[str, dict]:
    found = {}
    for step in definition["Steps"]:
        found[step["Name"]] = step
        for branch in ("IfSteps", "ElseSteps"):
            for child in step["Arguments"].get(branch, []):
                found[child["Name"]] = child
    return found


def refs(node) -> set[str]:
    """Every {"Get": ...} reference inside node."""
    if isinstance(node, dict):
        own = {node["Get"]} if isinstance(node.get("Get"), str) else set()
        return own.union(*(refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(refs(v) for v in node))
    return set()


def s3_strings(node) -> list[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in s3_strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in s3_strings(v)]
    return [node] if isinstance(node, str) and node.startswith("s3://") else []


def processing_input(step: dict, name: str) -> dict:
    return next(i["S3Input"] for i in step["Arguments"]["ProcessingInputs"] if i["InputName"] == name)


def channel_uri(step: dict, name: str):
    channel = next(c for c in step["Arguments"]["InputDataConfig"] if c["ChannelName"] == name)
    return channel["DataSource"]["S3DataSource"]["S3Uri"]


def asset_bytes(built, uri: str) -> bytes:
    prefix = f"s3://{built.stage.artifact_bucket_name}/"
    assert uri.startswith(prefix + "assets/"), uri
    return built.registry.assets[uri[len(prefix) :]].data


def test_steps_and_order(built):
    definition = built.definition
    assert [(s["Name"], s["Type"]) for s in definition["Steps"]] == [
        ("Preprocess", "Processing"),
        ("Train", "Training"),
        ("Evaluate", "Processing"),
        ("CheckAuc", "Condition"),
    ]
    check = steps_by_name(definition)["CheckAuc"]["Arguments"]
    assert [(s["Name"], s["Type"]) for s in check["IfSteps"]] == [("RegisterModel", "RegisterModel")]
    assert [(s["Name"], s["Type"]) for s in check["ElseSteps"]] == [("AucBelowThreshold", "Fail")]


def test_data_dependencies_chain_the_steps(built):
    steps = steps_by_name(built.definition)
    assert refs(steps["Train"]["Arguments"]) == {
        "Steps.Preprocess.ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri",
        "Steps.Preprocess.ProcessingOutputConfig.Outputs['validation'].S3Output.S3Uri",
        "Parameters.TrainingInstanceType",
        "Execution.PipelineExecutionId",
    }
    assert {
        "Steps.Train.ModelArtifacts.S3ModelArtifacts",
        "Steps.Preprocess.ProcessingOutputConfig.Outputs['test'].S3Output.S3Uri",
    } <= refs(steps["Evaluate"]["Arguments"])
    assert refs(steps["CheckAuc"]["Arguments"]["Conditions"]) == {
        "Steps.Evaluate.PropertyFiles.EvaluationReport",
        "Parameters.AucThreshold",
    }
    assert "Steps.Train.ModelArtifacts.S3ModelArtifacts" in refs(steps["RegisterModel"]["Arguments"])
    assert refs(steps["Preprocess"]["Arguments"]) >= {"Parameters.ProcessingInstanceType"}
    assert not any(r.startswith("Steps.") for r in refs(steps["Preprocess"]["Arguments"]))
    assert all("DependsOn" not in step for step in steps.values())  # order comes from data, not hand wiring


def test_parameters_default_to_the_stage(built):
    stage = built.stage
    params = {p["Name"]: p for p in built.definition["Parameters"]}
    assert {name: (p["Type"], p["DefaultValue"]) for name, p in params.items()} == {
        "ProcessingInstanceType": ("String", stage.training.processing_instance_type),
        "TrainingInstanceType": ("String", stage.training.training_instance_type),
        "ModelApprovalStatus": ("String", "PendingManualApproval"),
        "AucThreshold": ("Float", stage.training.metric_threshold),
    }
    assert params["ModelApprovalStatus"]["EnumValues"] == ["PendingManualApproval", "Approved"]


def test_training_reads_the_offline_store_through_the_athena_query(built):
    """(e) Preprocess's data is features.offline_store_query() over the feature group's Glue table, run by
    SageMaker in the stage's own workgroup, results encrypted with the stage key in the stage's bucket."""
    from pipeline_defs.features import offline_store_query

    stage = built.stage
    inputs = {i["InputName"]: i for i in steps_by_name(built.definition)["Preprocess"]["Arguments"]["ProcessingInputs"]}
    features = inputs["features"]
    assert "S3Input" not in features
    athena = features["DatasetDefinition"]["AthenaDatasetDefinition"]
    table = stage.feature_group_name.replace("-", "_")
    assert athena["QueryString"] == offline_store_query("sagemaker_featurestore", table)
    assert (athena["Catalog"], athena["Database"]) == ("AwsDataCatalog", "sagemaker_featurestore")
    assert athena["WorkGroup"] == f"{stage.prefix}-training" != "primary"
    assert athena["KmsKeyId"] == kms_alias_arn(stage) and athena["OutputFormat"] == "JSON"
    assert athena["OutputS3Uri"] == {
        "Std:Join": {
            "On": "",
            "Values": [
                f"s3://{stage.artifact_bucket_name}/athena-results/",
                {"Get": "Execution.PipelineExecutionId"},
                "/",
            ],
        }
    }
    assert features["DatasetDefinition"]["LocalPath"] == "/opt/ml/processing/input/data"
    argv = steps_by_name(built.definition)["Preprocess"]["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert argv[argv.index("--input-format") + 1] == "json"


def test_evaluation_report_is_a_property_file_of_an_output(built):
    evaluate = steps_by_name(built.definition)["Evaluate"]
    assert evaluate["PropertyFiles"] == [
        {"PropertyFileName": "EvaluationReport", "OutputName": "evaluation", "FilePath": "evaluation.json"}
    ]
    outputs = {o["OutputName"]: o for o in evaluate["Arguments"]["ProcessingOutputConfig"]["Outputs"]}
    assert outputs["evaluation"]["S3Output"]["LocalPath"] == "/opt/ml/processing/evaluation"
    arguments = evaluate["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert arguments[arguments.index("--output-dir") + 1] == "/opt/ml/processing/evaluation"


def test_condition_gates_on_auc_against_the_threshold_parameter(built):
    check = steps_by_name(built.definition)["CheckAuc"]["Arguments"]
    assert check["Conditions"] == [
        {"Type": "GreaterThanOrEqualTo", "LeftValue": AUC, "RightValue": {"Get": "Parameters.AucThreshold"}}
    ]


def test_fail_message_carries_the_metric_and_threshold(built):
    message = steps_by_name(built.definition)["AucBelowThreshold"]["Arguments"]["ErrorMessage"]
    values = message["Std:Join"]["Values"]
    assert AUC in values
    assert {"Get": "Parameters.AucThreshold"} in values
    rendered = message["Std:Join"]["On"].join(v if isinstance(v, str) else "<x>" for v in values)
    assert rendered == "Model AUC <x> is below the threshold <x>; the model was not registered."


def test_register_step_targets_the_stage_group_with_approval_parameter(built):
    stage = built.stage
    register = steps_by_name(built.definition)["RegisterModel"]["Arguments"]
    assert register["ModelPackageGroupName"] == stage.model_package_group_name
    assert register["ModelApprovalStatus"] == {"Get": "Parameters.ModelApprovalStatus"}
    container = register["InferenceSpecification"]["Containers"][0]
    assert container["ModelDataUrl"] == {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"
    assert container["Image"].startswith(f"141502667606.dkr.ecr.{stage.region}.amazonaws.com/sagemaker-scikit-learn:")
    realtime = register["InferenceSpecification"]["SupportedRealtimeInferenceInstanceTypes"]
    assert stage.inference.instance_type in realtime
    statistics = register["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert statistics["ContentType"] == "application/json"
    assert statistics["S3Uri"] == {
        "Std:Join": {
            "On": "/",
            "Values": [
                {"Get": "Steps.Evaluate.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri"},
                "evaluation.json",
            ],
        }
    }


def test_everything_is_encrypted_with_the_stage_key(built):
    key = kms_alias_arn(built.stage)
    steps = steps_by_name(built.definition)
    for name in ("Preprocess", "Evaluate"):
        args = steps[name]["Arguments"]
        assert args["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == key, name
        assert args["ProcessingOutputConfig"]["KmsKeyId"] == key, name
    train = steps["Train"]["Arguments"]
    assert train["ResourceConfig"]["VolumeKmsKeyId"] == key
    assert train["OutputDataConfig"]["KmsKeyId"] == key


def test_jobs_run_without_network_and_with_the_stage_role(built):
    steps = steps_by_name(built.definition)
    for name in ("Preprocess", "Evaluate"):
        assert steps[name]["Arguments"]["NetworkConfig"] == {
            "EnableNetworkIsolation": True,
            "EnableInterContainerTrafficEncryption": True,
        }
    assert steps["Train"]["Arguments"]["EnableNetworkIsolation"] is True
    for name in ("Preprocess", "Train", "Evaluate"):
        assert steps[name]["Arguments"]["RoleArn"] == built.stage.sagemaker_execution_role_arn


def test_step_code_comes_from_registered_assets(built, repo_root):
    steps = steps_by_name(built.definition)
    defs = repo_root / "pipeline_defs"
    features = (defs / "features.py").read_bytes()
    for name, script in (("Preprocess", "preprocess.py"), ("Evaluate", "evaluate.py")):
        step = steps[name]
        code = processing_input(step, "code")["S3Uri"]
        assert asset_bytes(built, code) == (defs / NAME / "steps" / script).read_bytes()
        assert asset_bytes(built, processing_input(step, "schema")["S3Uri"]) == features
        app = step["Arguments"]["AppSpecification"]
        assert app["ContainerEntrypoint"] == ["python3", f"/opt/ml/processing/input/code/{script}"]
        assert step["Arguments"]["Environment"]["PYTHONPATH"] == processing_input(step, "schema")["LocalPath"]

    train = steps["Train"]["Arguments"]
    assert asset_bytes(built, channel_uri(steps["Train"], "schema")) == features
    assert train["Environment"] == {"PYTHONPATH": "/opt/ml/input/data/schema"}  # where the channel lands
    archive = asset_bytes(built, channel_uri(steps["Train"], "code"))
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    model_code = defs / NAME / "steps" / "model"
    assert members == {p.name: p.read_bytes() for p in model_code.glob("*.py")}
    hyper = train["HyperParameters"]
    assert json.loads(hyper["sagemaker_program"]) == "train.py"
    assert json.loads(hyper["sagemaker_submit_directory"]) == "/opt/ml/input/data/code/sourcedir.tar.gz"
    assert "train.py" in members


def test_every_s3_uri_in_the_definition_is_an_asset_or_the_artifact_bucket(built):
    bucket = f"s3://{built.stage.artifact_bucket_name}/"
    referenced = set()
    for uri in s3_strings(built.definition):
        assert uri.startswith(bucket), uri
        if uri.startswith(bucket + "assets/"):
            referenced.add(uri[len(bucket) :])
            asset_bytes(built, uri)
    assert referenced == set(built.registry.assets), "registered assets the definition never uses"


def test_images_are_the_stage_region_sklearn_image(built):
    steps = steps_by_name(built.definition)
    images = {
        steps["Preprocess"]["Arguments"]["AppSpecification"]["ImageUri"],
        steps["Evaluate"]["Arguments"]["AppSpecification"]["ImageUri"],
        steps["Train"]["Arguments"]["AlgorithmSpecification"]["TrainingImage"],
    }
    assert images == {f"141502667606.dkr.ecr.{built.stage.region}.amazonaws.com/sagemaker-scikit-learn:1.9-0-cpu-py3"}


def test_job_requests_match_the_sagemaker_api(built, sagemaker_request_errors):
    for step in steps_by_name(built.definition).values():
        if step["Type"] in ("Processing", "Training", "RegisterModel"):
            assert sagemaker_request_errors(step) == "", step["Name"]


def test_build_is_deterministic(built, build_pipeline_def):
    again = build_pipeline_def(NAME, built.stage.stage)
    assert canonical_json(again.definition) == canonical_json(built.definition)
    assert {k: a.sha256 for k, a in again.registry.assets.items()} == {
        k: a.sha256 for k, a in built.registry.assets.items()
    }


def test_stages_differ_only_where_their_config_does(built_pipeline, stages):
    dev, prod = built_pipeline(NAME, "dev").definition, built_pipeline(NAME, "prod").definition
    assert dev != prod
    text = canonical_json(prod).decode()
    for leak in (stages["dev"].account, stages["dev"].artifact_bucket_name, stages["dev"].prefix + "-"):
        assert leak not in text
