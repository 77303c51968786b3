"""Render's entrypoint check: a job that would run a file its code does not hold fails the render.

The definitions here have the shapes the SageMaker SDK writes (tests/release/test_render.py checks
the real pipelines end to end); no SDK is needed to build them.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from gitops.errors import PipelineDefinitionError
from gitops.release.assets import AssetRegistry, deterministic_tar_gz
from gitops.release.entrypoints import check_entrypoints

BUCKET = "mlops-dev-artifacts-111111111111-eu-west-1"
SHOWN = "pipeline_defs/training/pipeline.py"


def uri(asset) -> str:
    return f"s3://{BUCKET}/{asset.release_path}"


@pytest.fixture
def code(tmp_path: Path) -> dict:
    """A registry with a processing script and a training archive, as ctx.asset/source_archive make them."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "train.py").write_text("print('train')\n")
    (model / "inference.py").write_text("print('serve')\n")
    registry = AssetRegistry()
    script = registry.add("preprocess.py", b"print('pre')\n")
    archive = registry.add("sourcedir.tar.gz", deterministic_tar_gz(model))
    sources = {
        uri(script): "pipeline_defs/training/steps/preprocess.py",
        uri(archive): "pipeline_defs/training/steps/model",
    }
    return {"registry": registry, "script": script, "archive": archive, "sources": sources, "model": model}


def definition(code: dict) -> dict:
    processing = {
        "Name": "Preprocess",
        "Type": "Processing",
        "Arguments": {
            "AppSpecification": {"ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/preprocess.py"]},
            "ProcessingInputs": [
                {"InputName": "data", "S3Input": {"S3Uri": {"Get": "Parameters.In"}, "LocalPath": "/opt/ml/in"}},
                {
                    "InputName": "code",
                    "S3Input": {"S3Uri": uri(code["script"]), "LocalPath": "/opt/ml/processing/input/code"},
                },
            ],
        },
    }
    training = {
        "Name": "Train",
        "Type": "Training",
        "Arguments": {
            "HyperParameters": {
                "sagemaker_program": json.dumps("train.py"),
                "sagemaker_submit_directory": json.dumps("/opt/ml/input/data/code/sourcedir.tar.gz"),
            },
            "InputDataConfig": [
                {"ChannelName": "train", "DataSource": {"S3DataSource": {"S3Uri": {"Get": "Steps.Preprocess.X"}}}},
                {"ChannelName": "code", "DataSource": {"S3DataSource": {"S3Uri": uri(code["archive"])}}},
            ],
        },
    }
    register = {
        "Name": "RegisterModel",
        "Type": "RegisterModel",
        "Arguments": {
            "InferenceSpecification": {
                "Containers": [
                    {
                        "Environment": {
                            "SAGEMAKER_PROGRAM": "inference.py",
                            "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                        }
                    }
                ]
            }
        },
    }
    check = {"Name": "Check", "Type": "Condition", "Arguments": {"IfSteps": [register], "ElseSteps": []}}
    return {"Steps": [processing, training, check]}


def run(code: dict, d: dict, registry: AssetRegistry | None = None) -> None:
    check_entrypoints(d, registry or code["registry"], BUCKET, code["sources"], SHOWN)


def test_the_shapes_the_sdk_writes_pass(code):
    run(code, definition(code))


def test_a_training_archive_without_its_program_fails_naming_pipeline_step_and_file(code):
    # Found: with steps/model/train.py deleted the release rendered and scanned clean.
    (code["model"] / "train.py").unlink()
    registry = AssetRegistry()
    script = registry.add("preprocess.py", code["script"].data)
    archive = registry.add("sourcedir.tar.gz", deterministic_tar_gz(code["model"]))
    code["sources"][uri(archive)] = "pipeline_defs/training/steps/model"
    d = definition({**code, "script": script, "archive": archive})
    with pytest.raises(PipelineDefinitionError) as info:
        run(code, d, registry)
    assert str(info.value) == (
        "pipeline_defs/training/pipeline.py: step 'Train' runs train.py, but its code archive"
        " pipeline_defs/training/steps/model does not hold it (holds: inference.py)"
    )


def test_a_program_renamed_in_the_definition_fails(code):
    d = definition(code)
    d["Steps"][1]["Arguments"]["HyperParameters"]["sagemaker_program"] = json.dumps("trian.py")
    with pytest.raises(PipelineDefinitionError, match=r"step 'Train' runs trian\.py, but its code archive"):
        run(code, d)


def test_a_submit_directory_on_a_missing_channel_fails(code):
    d = definition(code)
    d["Steps"][1]["Arguments"]["InputDataConfig"].pop()
    with pytest.raises(PipelineDefinitionError, match=r"step 'Train' takes its code from channel 'code', which it"):
        run(code, d)


def test_a_processing_entrypoint_naming_another_file_fails(code):
    d = definition(code)
    d["Steps"][0]["Arguments"]["AppSpecification"]["ContainerEntrypoint"][1] = "/opt/ml/processing/input/code/prep.py"
    with pytest.raises(PipelineDefinitionError) as info:
        run(code, d)
    assert str(info.value) == (
        f"{SHOWN}: step 'Preprocess' runs /opt/ml/processing/input/code/prep.py, but the input at"
        " /opt/ml/processing/input/code is pipeline_defs/training/steps/preprocess.py, not prep.py"
    )


def test_serving_code_from_a_release_archive_is_checked_inside_condition_branches(code):
    d = definition(code)
    container = d["Steps"][2]["Arguments"]["IfSteps"][0]["Arguments"]["InferenceSpecification"]["Containers"][0]
    container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] = uri(code["archive"])
    run(code, copy.deepcopy(d))  # inference.py is in the archive
    container["Environment"]["SAGEMAKER_PROGRAM"] = "serve.py"
    with pytest.raises(PipelineDefinitionError, match=r"step 'RegisterModel' runs serve\.py, but its serving code"):
        run(code, d)


def test_code_that_is_not_a_release_asset_is_left_alone(code):
    d = definition(code)
    d["Steps"][1]["Arguments"]["InputDataConfig"][1]["DataSource"]["S3DataSource"]["S3Uri"] = (
        "s3://elsewhere/code.tar.gz"
    )
    run(code, d)  # not ours to open: nothing to check against
