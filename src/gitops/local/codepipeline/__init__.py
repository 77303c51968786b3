"""The local CodePipeline runner: read a synthesized pipeline's stages and actions, then run them here."""

from __future__ import annotations

from gitops.local.codepipeline.actions import ACTION_KINDS
from gitops.local.codepipeline.actions.codebuild import CodeBuildAction, EnvVar
from gitops.local.codepipeline.actions.codecommit import SourceAction
from gitops.local.codepipeline.actions.manual_approval import ApprovalAction
from gitops.local.codepipeline.execution import run_pipeline
from gitops.local.codepipeline.model import Action, PipelineModel, PipelineRunnerError, PipelineStage
from gitops.local.codepipeline.record import ActionRecord, ExecutionRecord, StageRecord
from gitops.local.codepipeline.registry import (
    ActionContext,
    ActionFailed,
    ActionKind,
    ActionKinds,
    ActionOutcome,
    ActionTemplate,
    SourceOutput,
)
from gitops.local.codepipeline.template import load_stage_pipeline, read_pipeline, read_pipeline_file

__all__ = [
    "ACTION_KINDS",
    "Action",
    "ActionContext",
    "ActionFailed",
    "ActionKind",
    "ActionKinds",
    "ActionOutcome",
    "ActionRecord",
    "ActionTemplate",
    "ApprovalAction",
    "CodeBuildAction",
    "EnvVar",
    "ExecutionRecord",
    "PipelineModel",
    "PipelineRunnerError",
    "PipelineStage",
    "SourceAction",
    "SourceOutput",
    "StageRecord",
    "load_stage_pipeline",
    "read_pipeline",
    "read_pipeline_file",
    "run_pipeline",
]
