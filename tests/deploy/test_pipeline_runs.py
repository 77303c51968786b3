"""The AWS path of `gitops run`: StartPipelineExecution, then the steps as ListPipelineExecutionSteps reports them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
from botocore.stub import Stubber

from gitops.deploy.pipeline_runs import last_execution, start_execution, wait_for_execution

ARN = "arn:aws:sagemaker:eu-west-1:111111111111:pipeline/mlops-dev-training/execution/abc123def456"
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def client():
    return boto3.client("sagemaker", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")


def described(status: str, minutes: int, reason: str | None = None) -> dict:
    body = {
        "PipelineExecutionArn": ARN,
        "PipelineExecutionStatus": status,
        "CreationTime": T0,
        "LastModifiedTime": T0 + timedelta(minutes=minutes),
    }
    return body | ({"FailureReason": reason} if reason else {})


def steps(*items: dict) -> dict:
    return {"PipelineExecutionSteps": list(items)}


PREPROCESS = {
    "StepName": "Preprocess",
    "StepStatus": "Succeeded",
    "StartTime": T0,
    "EndTime": T0 + timedelta(seconds=95),
    "Metadata": {"ProcessingJob": {"Arn": "arn:aws:sagemaker:eu-west-1:111111111111:processing-job/p"}},
}
FAILED_FAIL = {
    "StepName": "AucBelowThreshold",
    "StepStatus": "Failed",
    "StartTime": T0 + timedelta(seconds=300),
    "EndTime": T0 + timedelta(seconds=301),
    "FailureReason": "Model AUC 0.61 is below the threshold 0.7; the model was not registered.",
    "Metadata": {"Fail": {"ErrorMessage": "Model AUC 0.61 is below the threshold 0.7"}},
}


def test_start_sends_the_pipeline_and_its_parameters():
    sm = client()
    with Stubber(sm) as stub:
        stub.add_response(
            "start_pipeline_execution",
            {"PipelineExecutionArn": ARN},
            {
                "PipelineName": "mlops-dev-training",
                "PipelineParameters": [{"Name": "AucThreshold", "Value": "0.8"}],
            },
        )
        assert start_execution(sm, "mlops-dev-training", {"AucThreshold": "0.8"}) == ARN
        stub.assert_no_pending_responses()


def test_waiting_reports_each_step_with_its_status_duration_and_failure_reason():
    sm = client()
    lines: list[str] = []
    sleeps: list[float] = []
    with Stubber(sm) as stub:
        stub.add_response("describe_pipeline_execution", described("Executing", 1), {"PipelineExecutionArn": ARN})
        stub.add_response(
            "list_pipeline_execution_steps",
            steps(PREPROCESS),
            {"PipelineExecutionArn": ARN, "SortOrder": "Ascending"},
        )
        stub.add_response(
            "describe_pipeline_execution", described("Failed", 5, "Step failure: AucBelowThreshold"), None
        )
        stub.add_response("list_pipeline_execution_steps", {**steps(PREPROCESS), "NextToken": "t"}, None)
        stub.add_response(
            "list_pipeline_execution_steps",
            steps(FAILED_FAIL),
            {"PipelineExecutionArn": ARN, "SortOrder": "Ascending", "NextToken": "t"},
        )
        record = wait_for_execution(sm, ARN, "dev", log=lines.append, poll_seconds=7, sleep=sleeps.append)
        stub.assert_no_pending_responses()
    assert sleeps == [7]
    assert record.status == "Failed" and record.failure_reason == "Step failure: AucBelowThreshold"
    assert record.target == "aws" and record.seconds == 300.0
    assert [(s.name, s.type, s.status, s.seconds) for s in record.steps] == [
        ("Preprocess", "Processing", "Succeeded", 95.0),
        ("AucBelowThreshold", "Fail", "Failed", 1.0),
    ]
    assert record.steps[1].failure_reason.startswith("Model AUC 0.61 is below the threshold 0.7")
    assert lines == ["Preprocess (Processing): Succeeded in 95.0s", "AucBelowThreshold (Fail): Failed in 1.0s"]


def test_the_last_execution_of_a_pipeline_never_run_is_none():
    sm = client()
    with Stubber(sm) as stub:
        stub.add_response(
            "list_pipeline_executions",
            {"PipelineExecutionSummaries": []},
            {"PipelineName": "mlops-dev-training", "SortOrder": "Descending", "MaxResults": 1},
        )
        assert last_execution(sm, "mlops-dev-training", "dev") is None


def test_the_status_line_lists_the_steps_that_ran_with_duration_and_reason():
    from gitops.deploy.pipeline_runs import execution_summary

    line = execution_summary(
        {
            "pipeline_name": "mlops-dev-training",
            "execution_id": "abc123def456789",
            "status": "Failed",
            "steps": [
                {"name": "Preprocess", "status": "Succeeded", "seconds": 4.83},
                {"name": "Train", "status": "Failed", "seconds": 6.1, "failure_reason": "exit code 1: boom"},
                {"name": "Evaluate", "status": "NotRun", "seconds": None},
            ],
        }
    )
    assert line == (
        "mlops-dev-training abc123def456: Failed: Preprocess Succeeded 4.8s, Train Failed 6.1s (exit code 1: boom)"
    )
