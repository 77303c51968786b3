"""Approval/AWS/Manual: the gate's decision; a rejection stops before the next stage."""

from __future__ import annotations

import pytest

from gitops.local.codepipeline import PipelineRunnerError


def test_a_rejection_stops_before_promote(pipeline):
    record, ran, _, _ = pipeline.execute(pipeline.Gate("Rejected", "not this one"))
    assert record.status == "Rejected"
    assert (record.failed_stage, record.failed_action) == ("Approve", "ApproveRelease")
    assert record.failure == "stage 'Approve' action 'ApproveRelease': rejected: not this one"
    assert ran[-1] == "approval Approve/ApproveRelease" and not any(line.startswith("promote") for line in ran)
    assert record.stage("Approve").status == "Failed"
    assert record.stage("Promote").status == "NotStarted"
    assert record.stage("Promote").action("Promote").status == "NotStarted"


def test_a_gate_answer_other_than_approved_or_rejected_fails_the_action(pipeline):
    record, ran, _, _ = pipeline.execute(pipeline.Gate("Maybe", ""))
    assert (record.status, record.failed_action) == ("Failed", "ApproveRelease")
    assert "the approval gate answered 'Maybe', not 'Approved' or 'Rejected'" in record.failure
    assert not any(line.startswith("promote") for line in ran)


def test_an_approval_with_artifacts_is_refused(pipeline):
    data = pipeline.template()
    pipeline.stages(data)[3]["Actions"][0]["InputArtifacts"] = [{"Name": "EnvRepository"}]
    with pytest.raises(PipelineRunnerError, match="action 'ApproveRelease': a manual approval takes no input"):
        pipeline.model(data)
