"""Reading a synthesized pipeline: stage order and RunOrder from the template, its structure checked as AWS does."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from gitops.local.codepipeline import (
    ApprovalAction,
    CodeBuildAction,
    PipelineRunnerError,
    SourceAction,
    load_stage_pipeline,
    read_pipeline,
)

ROOT = Path(__file__).resolve().parents[3]


def test_stage_order_and_actions_come_from_the_template(pipeline):
    model = pipeline.model()
    assert model.name == "mlops-dev-release"
    assert model.stage_names == ["Source", "Deploy", "Verify", "Approve", "Promote"]
    (source,) = model.stage("Source").actions
    assert isinstance(source, SourceAction)
    assert (source.repository, source.branch, source.namespace) == ("mlops-dev-env", "main", "SourceVariables")
    # Smoke comes first in the template but has RunOrder 2.
    assert [a.name for a in model.stage("Verify").actions] == ["Verify", "Smoke"]
    assert [(a.category, a.provider) for a in model.stage("Approve").actions] == [("Approval", "Manual")]
    assert isinstance(model.stage("Approve").actions[0], ApprovalAction)


def _unknown_artifact(stages: list) -> None:
    stages[4]["Actions"][0]["InputArtifacts"] = [{"Name": "Nowhere"}]


def _source_late(stages: list) -> None:
    stages[1]["Actions"].append(copy.deepcopy(stages[0]["Actions"][0]) | {"Name": "Late"})


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (
            _unknown_artifact,
            "stage 'Promote' action 'Promote': input artifact 'Nowhere' is produced by no earlier action",
        ),
        (_source_late, "stage 'Deploy' action 'Late': source actions belong in the first stage"),
    ],
)
def test_template_errors_name_the_template_stage_and_action(pipeline, breakage, message: str):
    data = pipeline.template()
    breakage(pipeline.stages(data))
    with pytest.raises(PipelineRunnerError) as caught:
        pipeline.model(data)
    assert str(caught.value).startswith(f"{pipeline.path}: pipeline ReleasePipeline48597FD7 ")
    assert message in str(caught.value)


def test_a_template_without_a_pipeline_is_named():
    with pytest.raises(PipelineRunnerError, match="no AWS::CodePipeline::Pipeline resources"):
        read_pipeline({"Resources": {}}, "Base.template.json")


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
