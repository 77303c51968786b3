"""Source/AWS/CodeCommit: the caller's checkout becomes the first artifact, without .git, with its variables."""

from __future__ import annotations

import pytest

from gitops.local.codepipeline import PipelineRunnerError, run_pipeline


def test_the_source_artifact_is_a_copy_without_git_metadata(pipeline, checkout):
    data = pipeline.set_buildspec(
        pipeline.template(),
        "DeployProject1CF7CB79",
        "version: 0.2\nphases:\n  build:\n    commands:\n"
        '      - test ! -e .git && test "$PWD" = "$CODEBUILD_SRC_DIR"\n'
        '      - echo "src ok $CODEBUILD_INITIATOR $CODEBUILD_RESOLVED_SOURCE_VERSION" >> "$RUN_LOG"\n',
    )
    record, ran, _, _ = pipeline.execute(pipeline.Gate(), data)
    assert record.status == "Succeeded", record.failure
    assert ran[0] == "src ok codepipeline/mlops-dev-release c0ffee"
    assert (checkout / ".git" / "HEAD").exists()  # the caller's checkout is left alone


def test_a_missing_source_directory_fails_the_source_action(pipeline, tmp_path):
    record = run_pipeline(
        pipeline.model(),
        source_dir_provider=lambda: tmp_path / "absent",
        approval_gate=pipeline.Gate(),
        env={},
        workdir=tmp_path / "work",
        log=lambda line: None,
    )
    assert (record.status, record.failed_stage, record.failed_action) == ("Failed", "Source", "EnvRepository")


def test_a_bare_source_directory_gives_no_commit_id(pipeline, tmp_path, checkout):
    record = run_pipeline(
        pipeline.model(),
        source_dir_provider=lambda: checkout,
        approval_gate=pipeline.Gate(),
        env={"RUN_LOG": str(tmp_path / "run.log")},
        workdir=tmp_path / "work",
        log=lambda line: None,
        base_env=pipeline.clean_env,
    )
    assert (record.status, record.failed_stage) == ("Failed", "Deploy")
    assert "#{SourceVariables.CommitId} (the source provider gave no such variable)" in record.failure


def test_a_source_with_an_input_artifact_is_refused(pipeline):
    data = pipeline.template()
    pipeline.stages(data)[0]["Actions"][0]["InputArtifacts"] = [{"Name": "EnvRepository"}]
    with pytest.raises(PipelineRunnerError, match="action 'EnvRepository': a CodeCommit source takes no input"):
        pipeline.model(data)
