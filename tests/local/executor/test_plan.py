"""The executor without the embedded target: expressions, ordering, refusals before the run, the verb's arguments."""

from __future__ import annotations

import pytest

from gitops.cli import main
from gitops.local.executor import BrokenWiring, ExecutionServices, ExecutorError, run_definition
from gitops.local.executor.expressions import Resolver, property_path


def resolver(parameters=None, steps=None, files=None) -> Resolver:
    return Resolver(
        parameters or {},
        {"PipelineExecutionId": "exec123"},
        steps or {},
        lambda step, name: (files or {})[(step, name)],
    )


def test_join_jsonget_parameters_and_step_properties_resolve():
    steps = {
        "Prep": {"ProcessingOutputConfig": {"Outputs": [{"OutputName": "train", "S3Output": {"S3Uri": "s3://b/t"}}]}}
    }
    files = {("Eval", "Report"): {"metrics": {"auc": {"value": 0.81}}, "list": [1, 2]}}
    value = {
        "Std:Join": {
            "On": "/",
            "Values": [
                {"Get": "Steps.Prep.ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri"},
                {"Get": "Execution.PipelineExecutionId"},
                {"Get": "Parameters.Size"},
                {
                    "Std:JsonGet": {
                        "PropertyFile": {"Get": "Steps.Eval.PropertyFiles.Report"},
                        "Path": "metrics.auc.value",
                    }
                },
            ],
        }
    }
    assert resolver({"Size": 3}, steps, files).resolve(value, "t") == "s3://b/t/exec123/3/0.81"
    assert property_path("Outputs[0].S3Output", "t") == ["Outputs", 0, "S3Output"]


def test_an_unresolvable_reference_names_what_is_missing():
    with pytest.raises(BrokenWiring, match=r"Parameters.Missing: no such parameter \(have Size\)"):
        resolver({"Size": 3}).resolve({"Get": "Parameters.Missing"}, "step 'X'")
    files = {("Eval", "Report"): {"metrics": {}}}
    with pytest.raises(BrokenWiring, match=r"JsonGet path 'metrics.auc': no property 'auc'"):
        resolver(files=files).resolve(
            {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.Eval.PropertyFiles.Report"}, "Path": "metrics.auc"}}, "t"
        )


def local_services(tmp_path) -> ExecutionServices:
    """Enough for Condition and Fail steps, which touch no AWS service."""
    return ExecutionServices(s3=None, sagemaker=None, local_dir=tmp_path, region="eu-west-1", account="111111111111")


def gated_definition() -> dict:
    fail = {
        "Name": "TooSmall",
        "Type": "Fail",
        "Arguments": {"ErrorMessage": {"Std:Join": {"On": "", "Values": ["size ", {"Get": "Parameters.Size"}]}}},
    }
    condition = {"Type": "GreaterThanOrEqualTo", "LeftValue": {"Get": "Parameters.Size"}, "RightValue": 3}
    return {
        "Version": "2020-12-01",
        "Parameters": [{"Name": "Size", "Type": "Integer", "DefaultValue": 5}],
        "Steps": [
            {"Name": "Last", "Type": "Fail", "DependsOn": ["Check"], "Arguments": {"ErrorMessage": "reached the end"}},
            {
                "Name": "Check",
                "Type": "Condition",
                "Arguments": {"Conditions": [condition], "IfSteps": [], "ElseSteps": [fail]},
            },
        ],
    }


def run(tmp_path, definition: dict, **parameters: str):
    return run_definition(
        definition, pipeline_name="p", stage="dev", services=local_services(tmp_path), parameters=parameters
    )


def test_steps_run_in_dependency_order_and_the_branch_not_taken_does_not_run(tmp_path):
    record = run(tmp_path, gated_definition())
    assert record.step("Check").status == "Succeeded" and record.step("Check").metadata["Outcome"] is True
    assert record.step("TooSmall").status == "NotRun"
    assert record.step("Last").failure_reason == "reached the end"
    assert record.step("Check").ended <= record.step("Last").started


def test_a_parameter_given_at_start_is_typed_and_takes_the_other_branch(tmp_path):
    record = run(tmp_path, gated_definition(), Size="2")
    assert record.status == "Failed" and record.step("TooSmall").failure_reason == "size 2"
    assert record.step("Check").metadata["Outcome"] is False
    with pytest.raises(ExecutorError, match=r"parameter Size='two' is not a Integer"):
        run(tmp_path, gated_definition(), Size="two")
    with pytest.raises(ExecutorError, match=r"no parameter Sise \(have Size\)"):
        run(tmp_path, gated_definition(), Sise="1")


def test_a_cycle_and_a_missing_dependency_are_refused_before_anything_runs(tmp_path):
    definition = gated_definition()
    definition["Steps"][1]["DependsOn"] = ["Last"]
    with pytest.raises(BrokenWiring, match="cycle"):
        run(tmp_path, definition)
    definition["Steps"][1]["DependsOn"] = ["Nowhere"]
    with pytest.raises(BrokenWiring, match="DependsOn names no step Nowhere"):
        run(tmp_path, definition)
    assert not list(tmp_path.rglob("*.json"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--pipeline", "nope", "--stage", "dev"],
            "--pipeline nope: no such pipeline (have feature_ingestion, training)",
        ),
        (
            ["--pipeline", "training", "--stage", "dev", "--param", "AucThreshold"],
            "--param 'AucThreshold': expected Name=Value",
        ),
        (["--pipeline", "training", "--stage", "qa"], "--stage qa: no such stage (have dev, prod)"),
    ],
)
def test_gitops_run_refuses_bad_arguments_before_touching_a_target(args, message, capsys, repo_root):
    with pytest.raises(SystemExit) as exited:
        main(["run", "--root", str(repo_root), "--target", "aws", *args])
    assert exited.value.code == 1
    assert message in capsys.readouterr().err
