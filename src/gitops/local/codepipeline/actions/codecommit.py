"""Source/AWS/CodeCommit: the env repository's checkout, from the caller's source provider, as the first artifact."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from gitops.local.codepipeline.model import Action
from gitops.local.codepipeline.registry import (
    ActionContext,
    ActionFailed,
    ActionKind,
    ActionOutcome,
    ActionTemplate,
    SourceOutput,
)


@dataclass(frozen=True, kw_only=True)
class SourceAction(Action):
    repository: str
    branch: str
    output_format: str  # CODE_ZIP (files only) or CODEBUILD_CLONE_REF (with .git)


def read(template: ActionTemplate) -> SourceAction:
    if template.input_artifacts or len(template.output_artifacts) != 1:
        raise template.error("a CodeCommit source takes no input and has exactly one output")
    return SourceAction(
        **template.common(),
        repository=template.text("RepositoryName"),
        branch=template.text("BranchName"),
        output_format=template.text("OutputArtifactFormat", "CODE_ZIP"),
    )


def run(action: SourceAction, context: ActionContext) -> ActionOutcome:
    provided = context.source_dir_provider()
    directory, given = (
        (provided.directory, dict(provided.variables)) if isinstance(provided, SourceOutput) else (provided, {})
    )
    directory = Path(directory)
    if not directory.is_dir():
        raise ActionFailed(f"the source directory {directory} does not exist")
    (output,) = action.output_artifacts
    dest = context.root / "artifacts" / output
    # CODE_ZIP carries the files only; CODEBUILD_CLONE_REF lets the build see the git history.
    keep_git = action.output_format == "CODEBUILD_CLONE_REF"
    shutil.copytree(directory, dest, symlinks=True, ignore=None if keep_git else shutil.ignore_patterns(".git"))
    context.artifacts[output] = dest
    if "CommitId" in given:
        context.revisions[output] = given["CommitId"]
    return ActionOutcome({"RepositoryName": action.repository, "BranchName": action.branch, **given})


KIND = ActionKind(("Source",), "AWS", "CodeCommit", read, run)
