"""The local CodePipeline runner: read a synthesized pipeline's stages and actions, then run them here."""

from __future__ import annotations

from gitops.local.codepipeline.template import (
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

__all__ = [
    "ApprovalAction",
    "CodeBuildAction",
    "ExecutionRecord",
    "PipelineRunnerError",
    "SourceAction",
    "SourceOutput",
    "load_stage_pipeline",
    "read_pipeline",
    "run_pipeline",
]
