"""The action kinds the local runner knows; a new kind is one module here and one line in ACTION_KINDS."""

from __future__ import annotations

from gitops.local.codepipeline.actions import codebuild, codecommit, manual_approval
from gitops.local.codepipeline.registry import ActionKinds

ACTION_KINDS = ActionKinds(
    [
        codecommit.KIND,
        codebuild.KIND,
        manual_approval.KIND,
    ]
)
