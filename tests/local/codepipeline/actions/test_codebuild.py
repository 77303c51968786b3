"""Build|Test/AWS/CodeBuild: the project's buildspec and merged environment, and a failing build named."""

from __future__ import annotations

import json

import pytest

from gitops.local.codepipeline import CodeBuildAction, PipelineRunnerError


def test_codebuild_action_has_its_buildspec_and_merged_env(pipeline):
    deploy = pipeline.model().stage("Deploy").actions[0]
    assert isinstance(deploy, CodeBuildAction)
    assert (deploy.project, deploy.timeout_minutes, deploy.primary_source) == ("mlops-dev-deploy", 5, "EnvRepository")
    env = {var.name: var.value for var in deploy.env_vars}
    assert env == {
        "STAGE": "dev",  # Ref to a parameter: its default
        "ARTIFACT_BUCKET": "mlops-dev-artifacts-111111111111-eu-west-1",  # Ref to a bucket: its literal name
        "RELEASE_COMMIT": "#{SourceVariables.CommitId}",  # a CodePipeline variable: resolved at run time
        "PIPELINE_EXECUTION_ID": "#{codepipeline.PipelineExecutionId}",
    }
    # The buildspec was a Fn::Join around the bucket's Ref, as CDK emits it.
    assert "to mlops-dev-artifacts-111111111111-eu-west-1" in deploy.buildspec.phases.build.commands[0]


def test_action_env_overrides_project_env(pipeline):
    data = pipeline.template()
    action = pipeline.stages(data)[1]["Actions"][0]
    action["Configuration"]["EnvironmentVariables"] = json.dumps([{"name": "STAGE", "type": "PLAINTEXT", "value": "x"}])
    env = {var.name: var.value for var in pipeline.model(data).stage("Deploy").actions[0].env_vars}
    assert env["STAGE"] == "x"


def _break_project_ref(data: dict, stages: list) -> None:
    stages[1]["Actions"][0]["Configuration"]["ProjectName"] = {"Ref": "ApprovalTopic1D517B4C"}


def _bad_buildspec(data: dict, stages: list) -> None:
    data["Resources"]["PromoteProject539F3544"]["Properties"]["Source"]["BuildSpec"] = (
        "version: 0.2\nphases:\n  bild:\n    commands: [x]\n"
    )


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (_break_project_ref, "stage 'Deploy' action 'Deploy': Configuration.ProjectName refers to 'ApprovalTopic"),
        (
            _bad_buildspec,
            "action 'Promote': project PromoteProject539F3544 Source.BuildSpec: phases.bild: unknown key",
        ),
    ],
)
def test_template_errors_name_the_template_stage_and_action(pipeline, breakage, message: str):
    data = pipeline.template()
    breakage(data, pipeline.stages(data))
    with pytest.raises(PipelineRunnerError) as caught:
        pipeline.model(data)
    assert str(caught.value).startswith(f"{pipeline.path}: pipeline ReleasePipeline48597FD7 ")
    assert message in str(caught.value)


def test_a_failing_build_stops_the_execution_and_names_the_action(pipeline):
    data = pipeline.set_buildspec(
        pipeline.template(), "VerifyProject883E82DD", "version: 0.2\nphases:\n  build:\n    commands:\n      - exit 3\n"
    )
    gate = pipeline.Gate()
    record, ran, _, lines = pipeline.execute(gate, data)
    assert record.status == "Failed"
    assert (record.failed_stage, record.failed_action) == ("Verify", "Verify")
    assert record.failure == (
        "stage 'Verify' action 'Verify': build of project mlops-dev-verify failed in BUILD:"
        " command failed with exit status 3: exit 3"
    )
    assert gate.asked == [] and len(ran) == 1  # only Deploy ran
    verify = record.stage("Verify")
    assert (verify.status, verify.action("Smoke").status) == ("Failed", "NotStarted")
    assert verify.action("Verify").build.failed_phase == "BUILD"
    assert "Verify/Verify [BUILD] Running command exit 3" in lines
