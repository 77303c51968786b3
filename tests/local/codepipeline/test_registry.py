"""The action kind registry: a kind registered in one place is read and run; anything else is refused by name."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from gitops.local.codepipeline import (
    ACTION_KINDS,
    Action,
    ActionContext,
    ActionKind,
    ActionKinds,
    ActionOutcome,
    ActionTemplate,
    PipelineRunnerError,
)
from gitops.local.codepipeline.actions import codebuild

BUILTIN = "Source/AWS/CodeCommit, Build|Test/AWS/CodeBuild, Approval/AWS/Manual"


@dataclass(frozen=True, kw_only=True)
class EchoAction(Action):
    message: str


def read_echo(template: ActionTemplate) -> EchoAction:
    return EchoAction(**template.common(), message=template.text("Message"))


def run_echo(action: EchoAction, context: ActionContext) -> ActionOutcome:
    said = context.substitute(action.message, f"{context.where}: Message")
    run_log = Path(context.env["RUN_LOG"])
    run_log.write_text(run_log.read_text() + f"echo {said}\n")
    return ActionOutcome({"Said": said})


ECHO = ActionKind(("Invoke",), "Custom", "Echo", read_echo, run_echo)


def with_echo(pipeline) -> dict:
    """The fixture pipeline with an Echo action after Verify's, whose output the approval shows."""
    data = pipeline.template()
    stages = pipeline.stages(data)
    stages[2]["Actions"].append(
        {
            "Name": "Echo",
            "ActionTypeId": {"Category": "Invoke", "Owner": "Custom", "Provider": "Echo", "Version": "1"},
            "Configuration": {"Message": "#{VerifyVariables.RESULT} at #{SourceVariables.CommitId}"},
            "Namespace": "Echoed",
            "RunOrder": 3,
        }
    )
    stages[3]["Actions"][0]["Configuration"]["CustomData"] = "echo said: #{Echoed.Said}"
    return data


def test_a_registered_kind_is_read_and_run_in_its_place(pipeline):
    model = pipeline.model(with_echo(pipeline), kinds=ACTION_KINDS.with_kind(ECHO))
    assert [a.name for a in model.stage("Verify").actions] == ["Verify", "Smoke", "Echo"]
    gate = pipeline.Gate()
    record, ran, _, _ = pipeline.execute(gate, model=model)
    assert record.status == "Succeeded", record.failure
    assert ran[2:4] == ["smoke green", "echo green at c0ffee"]  # after Smoke (RunOrder 2), before the approval
    assert record.stage("Verify").action("Echo").output_variables == {"Said": "green at c0ffee"}
    assert gate.asked == [("Approve", "ApproveRelease", "echo said: green at c0ffee")]


def test_an_unregistered_kind_is_refused_naming_the_registered_ones(pipeline):
    with pytest.raises(PipelineRunnerError) as caught:
        pipeline.model(with_echo(pipeline))
    assert str(caught.value) == (
        f"{pipeline.path}: pipeline ReleasePipeline48597FD7 stage 'Verify' action 'Echo': action type"
        f" Invoke/Custom/Echo is not supported by the local runner (supported: {BUILTIN})"
    )


def test_the_supported_list_follows_the_registrations(pipeline):
    data = pipeline.template()
    pipeline.stages(data)[2]["Actions"][1]["ActionTypeId"]["Provider"] = "CloudFormation"
    with pytest.raises(PipelineRunnerError) as caught:
        pipeline.model(data, kinds=ACTION_KINDS.with_kind(ECHO))
    assert "stage 'Verify' action 'Verify': action type Build/AWS/CloudFormation is not supported" in str(caught.value)
    assert str(caught.value).endswith(f"(supported: {BUILTIN}, Invoke/Custom/Echo)")


def test_a_kind_that_overlaps_a_registered_one_is_refused():
    test_runner = ActionKind(("Test",), "AWS", "CodeBuild", read_echo, run_echo)
    with pytest.raises(
        ValueError, match=r"action kind Test/AWS/CodeBuild overlaps the registered Build\|Test/AWS/Code"
    ):
        ActionKinds([codebuild.KIND, test_runner])
    assert ActionKinds([codebuild.KIND]).with_kind(ECHO).supported == "Build|Test/AWS/CodeBuild, Invoke/Custom/Echo"
