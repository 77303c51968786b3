"""The run loop: the template's stage order, variables between actions, and the record of what happened."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitops.local.codepipeline import ExecutionRecord, SourceOutput, run_pipeline


def test_an_approved_execution_runs_every_stage_in_order(pipeline):
    gate = pipeline.Gate()
    record, ran, updates, _ = pipeline.execute(gate)
    assert record.status == "Succeeded", record.failure
    assert ran == [
        "deploy dev c0ffee mlops-dev-artifacts-111111111111-eu-west-1 to mlops-dev-artifacts-111111111111-eu-west-1",
        "verify original exec-1",  # a fresh copy of the source: Deploy's change is not seen
        "smoke green",  # Verify's exported variable, through its namespace
        "approval Approve/ApproveRelease",
        "promote dev to prod",
    ]
    assert gate.asked == [("Approve", "ApproveRelease", "Release at mlops-dev-env@c0ffee verified: green.")]
    assert [s.status for s in record.stages] == ["Succeeded"] * 5
    assert record.stage("Approve").action("ApproveRelease").message == "looks good"
    assert record.stage("Source").action("EnvRepository").output_variables["CommitId"] == "c0ffee"
    # The state store sees the execution wait at the approval.
    assert any(u.pending_approval == ("Approve", "ApproveRelease") for u in updates)
    assert updates[-1] == record


def test_an_unresolvable_variable_fails_the_action(pipeline):
    data = pipeline.template()
    pipeline.stages(data)[1]["Actions"][0]["Configuration"]["EnvironmentVariables"] = json.dumps(
        [{"name": "X", "type": "PLAINTEXT", "value": "#{NoSuch.Thing}"}]
    )
    record, ran, _, _ = pipeline.execute(pipeline.Gate(), data)
    assert record.status == "Failed" and ran == []
    assert "environment variable X: cannot resolve the variable #{NoSuch.Thing}" in record.failure


def test_an_interrupted_execution_is_recorded_as_stopped(pipeline, tmp_path: Path, checkout: Path):
    def interrupted(stage: str, action: str, custom_data: str | None) -> tuple[str, str]:
        raise KeyboardInterrupt

    updates: list[ExecutionRecord] = []
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(
            pipeline.model(),
            source_dir_provider=lambda: SourceOutput(checkout, {"CommitId": "c0ffee"}),
            approval_gate=interrupted,
            env={"RUN_LOG": str(tmp_path / "run.log")},
            workdir=tmp_path / "work",
            log=lambda line: None,
            on_update=updates.append,
            base_env=pipeline.clean_env,
        )
    last = updates[-1]
    assert last.status == "Stopped" and last.pending_approval is None
    assert last.stage("Approve").action("ApproveRelease").status == "Failed"


def test_the_execution_record_round_trips_through_json(pipeline):
    record, _, _, _ = pipeline.execute(pipeline.Gate("Rejected", "no"))
    again = ExecutionRecord.model_validate_json(record.model_dump_json())
    assert again == record
    assert again.stage("Deploy").action("Deploy").build.phases[0].name == "BUILD"
