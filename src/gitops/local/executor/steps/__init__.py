"""The step kinds the local executor runs; a new kind is one module here and one line in STEP_KINDS."""

from __future__ import annotations

from gitops.local.executor.registry import StepKinds
from gitops.local.executor.steps import condition, fail, processing, register_model, training

STEP_KINDS = StepKinds(
    [
        processing.KIND,
        training.KIND,
        condition.KIND,
        fail.KIND,
        register_model.KIND,
    ]
)
