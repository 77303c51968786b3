"""The local pipeline runner: the template's stage order, its buildspecs, and stops on failure or rejection."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from gitops.local.codepipeline import (
    ApprovalAction,
    CodeBuildAction,
    ExecutionRecord,
    PipelineRunnerError,
    SourceAction,
    SourceOutput,
    load_stage_pipeline,
    read_pipeline,
    run_pipeline,
)

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).parents[1] / "fixtures" / "runner" / "mlops-dev.template.json"
PSEUDO = {"AWS::AccountId": "111111111111", "AWS::Region": "eu-west-1"}
CLEAN_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8"}


def template() -> dict:
    return json.loads(FIXTURE.read_text())


def model(data: dict | None = None):
    return read_pipeline(data or template(), FIXTURE, pseudo_parameters=PSEUDO)


def set_buildspec(data: dict, project: str, text: str) -> dict:
    data = copy.deepcopy(data)
    data["Resources"][project]["Properties"]["Source"]["BuildSpec"] = text
    return data


class Gate:
    """An approval gate that records what it was asked and answers as told."""

    def __init__(self, decision: str = "Approved", summary: str = "looks good") -> None:
        self.decision, self.summary = decision, summary
        self.asked: list[tuple[str, str, str | None]] = []
        self.run_log: Path | None = None

    def __call__(self, stage: str, action: str, custom_data: str | None) -> tuple[str, str]:
        self.asked.append((stage, action, custom_data))
        if self.run_log is not None:
            self.run_log.write_text(self.run_log.read_text() + f"approval {stage}/{action}\n")
        return self.decision, self.summary


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """The env repository's head as the caller would check it out (with a .git directory)."""
    src = tmp_path / "checkout"
    (src / ".git").mkdir(parents=True)
    (src / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (src / "marker.txt").write_text("original\n")
    return src


def execute(tmp_path: Path, checkout: Path, gate: Gate, data: dict | None = None, **kwargs):
    run_log = tmp_path / "run.log"
    run_log.write_text("")
    gate.run_log = run_log
    updates: list[ExecutionRecord] = []
    lines: list[str] = []
    record = run_pipeline(
        model(data),
        source_dir_provider=lambda: SourceOutput(checkout, {"CommitId": "c0ffee"}),
        approval_gate=gate,
        env={"RUN_LOG": str(run_log)},
        workdir=tmp_path / "work",
        log=lines.append,
        execution_id="exec-1",
        on_update=updates.append,
        base_env=CLEAN_ENV,
        **kwargs,
    )
    return record, run_log.read_text().splitlines(), updates, lines


# --- reading --------------------------------------------------------------------------------------


def test_stage_order_and_actions_come_from_the_template():
    pipeline = model()
    assert pipeline.name == "mlops-dev-release"
    assert pipeline.stage_names == ["Source", "Deploy", "Verify", "Approve", "Promote"]
    (source,) = pipeline.stage("Source").actions
    assert isinstance(source, SourceAction)
    assert (source.repository, source.branch, source.namespace) == ("mlops-dev-env", "main", "SourceVariables")
    # Smoke comes first in the template but has RunOrder 2.
    assert [a.name for a in pipeline.stage("Verify").actions] == ["Verify", "Smoke"]
    assert [(a.category, a.provider) for a in pipeline.stage("Approve").actions] == [("Approval", "Manual")]
    assert isinstance(pipeline.stage("Approve").actions[0], ApprovalAction)


def test_codebuild_action_has_its_buildspec_and_merged_env():
    deploy = model().stage("Deploy").actions[0]
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


def test_unresolvable_intrinsics_become_readable_placeholders():
    deploy = read_pipeline(template(), FIXTURE).stage("Deploy").actions[0]  # no pseudo parameters given
    env = {var.name: var.value for var in deploy.env_vars}
    assert env["ARTIFACT_BUCKET"] == "mlops-dev-artifacts-{{AWS::AccountId}}-{{AWS::Region}}"


def test_action_env_overrides_project_env():
    data = template()
    action = data["Resources"]["ReleasePipeline48597FD7"]["Properties"]["Stages"][1]["Actions"][0]
    action["Configuration"]["EnvironmentVariables"] = json.dumps([{"name": "STAGE", "type": "PLAINTEXT", "value": "x"}])
    env = {var.name: var.value for var in model(data).stage("Deploy").actions[0].env_vars}
    assert env["STAGE"] == "x"


def _stages(data: dict) -> list:
    return data["Resources"]["ReleasePipeline48597FD7"]["Properties"]["Stages"]


def _break_project_ref(data: dict) -> None:
    _stages(data)[1]["Actions"][0]["Configuration"]["ProjectName"] = {"Ref": "ApprovalTopic1D517B4C"}


def _unsupported_provider(data: dict) -> None:
    _stages(data)[2]["Actions"][1]["ActionTypeId"]["Provider"] = "CloudFormation"


def _bad_buildspec(data: dict) -> None:
    data["Resources"]["PromoteProject539F3544"]["Properties"]["Source"]["BuildSpec"] = (
        "version: 0.2\nphases:\n  bild:\n    commands: [x]\n"
    )


def _unknown_artifact(data: dict) -> None:
    _stages(data)[4]["Actions"][0]["InputArtifacts"] = [{"Name": "Nowhere"}]


def _source_late(data: dict) -> None:
    _stages(data)[1]["Actions"].append(copy.deepcopy(_stages(data)[0]["Actions"][0]) | {"Name": "Late"})


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (_break_project_ref, "stage 'Deploy' action 'Deploy': Configuration.ProjectName refers to 'ApprovalTopic"),
        (
            _unsupported_provider,
            "stage 'Verify' action 'Verify': action type Build/AWS/CloudFormation is not supported",
        ),
        (
            _bad_buildspec,
            "action 'Promote': project PromoteProject539F3544 Source.BuildSpec: phases.bild: unknown key",
        ),
        (
            _unknown_artifact,
            "stage 'Promote' action 'Promote': input artifact 'Nowhere' is produced by no earlier action",
        ),
        (_source_late, "stage 'Deploy' action 'Late': source actions belong in the first stage"),
    ],
)
def test_template_errors_name_the_template_stage_and_action(breakage, message: str):
    data = template()
    breakage(data)
    with pytest.raises(PipelineRunnerError) as caught:
        model(data)
    assert str(caught.value).startswith(f"{FIXTURE}: pipeline ReleasePipeline48597FD7 ")
    assert message in str(caught.value)


def test_a_template_without_a_pipeline_is_named():
    with pytest.raises(PipelineRunnerError, match="no AWS::CodePipeline::Pipeline resources"):
        read_pipeline({"Resources": {}}, "Base.template.json")


# --- running --------------------------------------------------------------------------------------


def test_an_approved_execution_runs_every_stage_in_order(tmp_path: Path, checkout: Path):
    gate = Gate()
    record, ran, updates, _ = execute(tmp_path, checkout, gate)
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


def test_the_source_artifact_is_a_copy_without_git_metadata(tmp_path: Path, checkout: Path):
    data = set_buildspec(
        template(),
        "DeployProject1CF7CB79",
        "version: 0.2\nphases:\n  build:\n    commands:\n"
        '      - test ! -e .git && test "$PWD" = "$CODEBUILD_SRC_DIR"\n'
        '      - echo "src ok $CODEBUILD_INITIATOR $CODEBUILD_RESOLVED_SOURCE_VERSION" >> "$RUN_LOG"\n',
    )
    record, ran, _, _ = execute(tmp_path, checkout, Gate(), data)
    assert record.status == "Succeeded", record.failure
    assert ran[0] == "src ok codepipeline/mlops-dev-release c0ffee"
    assert (checkout / ".git" / "HEAD").exists()  # the caller's checkout is left alone


def test_a_rejection_stops_before_promote(tmp_path: Path, checkout: Path):
    record, ran, _, _ = execute(tmp_path, checkout, Gate("Rejected", "not this one"))
    assert record.status == "Rejected"
    assert (record.failed_stage, record.failed_action) == ("Approve", "ApproveRelease")
    assert record.failure == "stage 'Approve' action 'ApproveRelease': rejected: not this one"
    assert ran[-1] == "approval Approve/ApproveRelease" and not any(line.startswith("promote") for line in ran)
    assert record.stage("Approve").status == "Failed"
    assert record.stage("Promote").status == "NotStarted"
    assert record.stage("Promote").action("Promote").status == "NotStarted"


def test_a_failing_build_stops_the_execution_and_names_the_action(tmp_path: Path, checkout: Path):
    data = set_buildspec(
        template(), "VerifyProject883E82DD", "version: 0.2\nphases:\n  build:\n    commands:\n      - exit 3\n"
    )
    gate = Gate()
    record, ran, _, lines = execute(tmp_path, checkout, gate, data)
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


def test_an_unresolvable_variable_fails_the_action(tmp_path: Path, checkout: Path):
    data = template()
    _stages(data)[1]["Actions"][0]["Configuration"]["EnvironmentVariables"] = json.dumps(
        [{"name": "X", "type": "PLAINTEXT", "value": "#{NoSuch.Thing}"}]
    )
    record, ran, _, _ = execute(tmp_path, checkout, Gate(), data)
    assert record.status == "Failed" and ran == []
    assert "environment variable X: cannot resolve the variable #{NoSuch.Thing}" in record.failure


def test_a_missing_source_directory_fails_the_source_action(tmp_path: Path):
    record = run_pipeline(
        model(),
        source_dir_provider=lambda: tmp_path / "absent",
        approval_gate=Gate(),
        env={},
        workdir=tmp_path / "work",
        log=lambda line: None,
    )
    assert (record.status, record.failed_stage, record.failed_action) == ("Failed", "Source", "EnvRepository")


def test_a_bare_source_directory_gives_no_commit_id(tmp_path: Path, checkout: Path):
    record = run_pipeline(
        model(),
        source_dir_provider=lambda: checkout,
        approval_gate=Gate(),
        env={"RUN_LOG": str(tmp_path / "run.log")},
        workdir=tmp_path / "work",
        log=lambda line: None,
        base_env=CLEAN_ENV,
    )
    assert (record.status, record.failed_stage) == ("Failed", "Deploy")
    assert "#{SourceVariables.CommitId} (the source provider gave no such variable)" in record.failure


def test_an_interrupted_execution_is_recorded_as_stopped(tmp_path: Path, checkout: Path):
    def interrupted(stage: str, action: str, custom_data: str | None) -> tuple[str, str]:
        raise KeyboardInterrupt

    updates: list[ExecutionRecord] = []
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(
            model(),
            source_dir_provider=lambda: SourceOutput(checkout, {"CommitId": "c0ffee"}),
            approval_gate=interrupted,
            env={"RUN_LOG": str(tmp_path / "run.log")},
            workdir=tmp_path / "work",
            log=lambda line: None,
            on_update=updates.append,
            base_env=CLEAN_ENV,
        )
    last = updates[-1]
    assert last.status == "Stopped" and last.pending_approval is None
    assert last.stage("Approve").action("ApproveRelease").status == "Failed"


def test_the_execution_record_round_trips_through_json(tmp_path: Path, checkout: Path):
    record, _, _, _ = execute(tmp_path, checkout, Gate("Rejected", "no"))
    again = ExecutionRecord.model_validate_json(record.model_dump_json())
    assert again == record
    assert again.stage("Deploy").action("Deploy").build.phases[0].name == "BUILD"


# --- the real template ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered_release(tmp_path_factory) -> Path:
    """The release rendered from this repository (slow: CDK synth + pipeline builds, cached)."""
    if not (ROOT / "infra" / "app.py").exists():
        pytest.skip("infra/app.py does not exist yet")
    from gitops.release.render import render_release

    out = tmp_path_factory.mktemp("release") / "release"
    render_release(ROOT, out)
    return out


@pytest.mark.slow
def test_real_templates_have_the_designed_stage_order(rendered_release: Path):
    from gitops.config import load_stages

    for name, cfg in load_stages(ROOT).items():
        pipeline = load_stage_pipeline(rendered_release, name, pseudo_parameters={"AWS::Region": cfg.region})
        expected = ["Source", "Deploy", "Verify"] + (["Approve", "Promote"] if cfg.promote_to else [])
        assert pipeline.stage_names == expected, name
        for stage in pipeline.stages[1:]:
            for action in stage.actions:
                assert isinstance(action, CodeBuildAction | ApprovalAction)
                if isinstance(action, CodeBuildAction):
                    assert action.buildspec is not None, f"{name} {stage.name}/{action.name}: buildspec not inline"
