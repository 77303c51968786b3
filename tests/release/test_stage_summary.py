"""A stage's summary in the manifest must agree with the release's files; deploy acts on neither otherwise.

The release id covers the summary, so these releases are sealed with the wrong summary in them, as
a renderer with a bug would write them: check_stage_summary is what refuses them, naming the manifest,
the stage and what disagrees.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitops.config import load_stages
from gitops.errors import ReleaseError
from gitops.release.manifest import (
    MANIFEST,
    PipelineSummary,
    StackSummary,
    StageSummary,
    check_stage_summary,
    load_release,
    load_stage_config_from_release,
    seal_manifest,
    stage_config_path,
    write_release_dir,
)
from gitops.release.pipelines import canonical_json

ROOT = Path(__file__).resolve().parents[2]
DEV = load_stages(ROOT)["dev"]
BASE = "stages/dev/templates/Base.template.json"


def _files(**extra: bytes) -> dict[str, bytes]:
    files = {
        stage_config_path("dev"): canonical_json(DEV.model_dump(mode="json")),
        BASE: canonical_json({"Resources": {}}),
        "stages/dev/templates/Base.assets.json": canonical_json({"stack_name": "mlops-dev-base", "files": []}),
        "stages/dev/pipelines/training.json": canonical_json({"Version": "2020-12-01"}),
        # Files of another stage, and a template's asset list, are not dev's stacks.
        "stages/prod/templates/Other.template.json": canonical_json({"Resources": {}}),
    }
    return {**files, **extra}


def _summary(**change) -> StageSummary:
    summary = {
        "account": DEV.account,
        "region": DEV.region,
        "promote_to": DEV.promote_to,
        "stacks": {"Base": StackSummary(stack_name="mlops-dev-base", resources=0, resource_types={})},
        "pipelines": {
            "training": PipelineSummary(pipeline_name=DEV.pipeline_name("training"), steps=[], parameters=[])
        },
    }
    return StageSummary(**{**summary, **change})


def _release(tmp_path: Path, summary: StageSummary, files: dict[str, bytes] | None = None) -> Path:
    out = tmp_path / "release"
    files = _files() if files is None else files
    write_release_dir(out, files, seal_manifest(files, stages={"dev": summary}, engine_wheel="assets/x/e.whl"))
    return out


def _refusal(release: Path, stage: str = "dev") -> str:
    with pytest.raises(ReleaseError) as refused:
        check_stage_summary(release, load_release(release), stage)
    return str(refused.value)


def test_a_summary_that_agrees_with_the_files_passes(tmp_path: Path):
    release = _release(tmp_path, _summary())
    assert check_stage_summary(release, load_release(release), "dev") is None


def test_a_stage_the_release_does_not_have_is_refused(tmp_path: Path):
    release = _release(tmp_path, _summary())
    assert _refusal(release, "qa") == f"{release / MANIFEST}: the release has no stage 'qa'"


@pytest.mark.parametrize(
    "summary",
    [
        _summary(stacks={}),  # a template deploy would skip
        _summary(
            stacks={
                "Base": StackSummary(stack_name="mlops-dev-base", resources=0, resource_types={}),
                "X": StackSummary(stack_name="x", resources=0, resource_types={}),
            }
        ),
        _summary(pipelines={}),  # a pipeline file deploy would skip
    ],
    ids=["stack missing", "stack without template", "pipeline missing"],
)
def test_stacks_or_pipelines_that_differ_from_the_files_are_refused(tmp_path: Path, summary: StageSummary):
    release = _release(tmp_path, summary)
    assert _refusal(release) == (
        f"{release / MANIFEST}: stage 'dev': the summary's stacks or pipelines differ from its files"
    )


@pytest.mark.parametrize("change", [{"account": "222222222222"}, {"region": "us-east-1"}])
def test_an_account_or_region_other_than_the_stage_configs_is_refused(tmp_path: Path, change: dict):
    release = _release(tmp_path, _summary(**change))
    assert _refusal(release) == (
        f"{release / MANIFEST}: stage 'dev': account/region differ from stages/dev/config.json"
    )


def test_a_misnamed_pipeline_is_refused(tmp_path: Path):
    wrong = PipelineSummary(pipeline_name="mlops-prod-training", steps=[], parameters=[])
    release = _release(tmp_path, _summary(pipelines={"training": wrong}))
    assert _refusal(release) == f"{release / MANIFEST}: stage 'dev': pipeline 'training' is misnamed in the summary"


def test_a_stack_named_otherwise_than_its_asset_list_is_refused(tmp_path: Path):
    wrong = StackSummary(stack_name="someone-elses-stack", resources=0, resource_types={})
    release = _release(tmp_path, _summary(stacks={"Base": wrong}))
    assert _refusal(release) == f"{release / MANIFEST}: stage 'dev': stack 'Base' is misnamed in the summary"


def test_without_a_stage_config_only_the_files_are_compared(tmp_path: Path):
    files = _files()
    del files[stage_config_path("dev")]
    release = _release(tmp_path, _summary(account="222222222222"), files)
    assert check_stage_summary(release, load_release(release), "dev") is None


def test_the_stage_config_is_read_from_the_release(tmp_path: Path):
    release = _release(tmp_path, _summary())
    assert load_stage_config_from_release(release, "dev") == DEV
    with pytest.raises(ReleaseError) as missing:
        load_stage_config_from_release(release, "qa")
    assert str(missing.value) == f"{release}: the release has no stage 'qa'"


def test_invalid_stage_settings_in_a_release_are_refused_naming_the_file(tmp_path: Path):
    settings = json.loads(_files()[stage_config_path("dev")])
    settings["account"] = "not-an-account"
    release = _release(tmp_path, _summary(), _files(**{stage_config_path("dev"): canonical_json(settings)}))
    with pytest.raises(ReleaseError) as refused:
        load_stage_config_from_release(release, "dev")
    assert str(refused.value).startswith(f"{release / stage_config_path('dev')}: invalid stage settings: ")
