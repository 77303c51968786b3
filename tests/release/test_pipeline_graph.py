"""Structural validation of pipeline definitions: what AWS rejects at CreatePipeline, caught at render."""

from __future__ import annotations

import copy

import pytest

from gitops.errors import PipelineDefinitionError
from gitops.release.pipelines import validate_definition

GOOD = {
    "Version": "2020-12-01",
    "Parameters": [{"Name": "Threshold", "Type": "Float", "DefaultValue": 0.7}],
    "Steps": [
        {"Name": "Prep", "Type": "Processing", "Arguments": {}},
        {
            "Name": "Train",
            "Type": "Training",
            "Arguments": {"In": {"Get": "Steps.Prep.ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri"}},
        },
        {
            "Name": "Check",
            "Type": "Condition",
            "Arguments": {
                "Conditions": [
                    {
                        "Type": "GreaterThanOrEqualTo",
                        "LeftValue": {"Get": "Steps.Train.FinalMetricDataList['auc'].Value"},
                        "RightValue": {"Get": "Parameters.Threshold"},
                    }
                ],
                "IfSteps": [{"Name": "Register", "Type": "RegisterModel", "Arguments": {}}],
                "ElseSteps": [{"Name": "Fail", "Type": "Fail", "Arguments": {}}],
            },
        },
    ],
}


def test_valid_graph_passes():
    validate_definition(copy.deepcopy(GOOD), "p.py")


def _broken(mutate) -> dict:
    data = copy.deepcopy(GOOD)
    mutate(data)
    return data


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["Steps"].append({"Name": "Prep", "Type": "Processing"}), "duplicate step name 'Prep'"),
        (
            lambda d: d["Steps"][2]["Arguments"]["ElseSteps"].append({"Name": "Train", "Type": "Fail"}),
            "duplicate step name 'Train'",
        ),
        (lambda d: d["Steps"][1].update(DependsOn=["Nope"]), "step 'Train' depends on unknown step 'Nope'"),
        (
            lambda d: d["Steps"][1]["Arguments"].update(X={"Get": "Steps.Ghost.Properties.X"}),
            "step 'Train' refers to unknown step 'Ghost'",
        ),
        (
            lambda d: d["Steps"][1]["Arguments"].update(X={"Get": "Parameters.Missing"}),
            "undeclared parameter 'Missing'",
        ),
        (lambda d: d["Steps"][0].update(DependsOn=["Train"]), "cycle"),
        (lambda d: d.update(Steps=[]), "no steps"),
    ],
)
def test_invalid_graphs_are_named(mutate, expected):
    with pytest.raises(PipelineDefinitionError) as info:
        validate_definition(_broken(mutate), "pipeline_defs/x/pipeline.py")
    assert expected in str(info.value)
    assert str(info.value).startswith("pipeline_defs/x/pipeline.py: ")
