"""Errors of the local pipeline executor: refused before the run, or a step that failed in it."""

from __future__ import annotations

from gitops.errors import GitopsError


class ExecutorError(GitopsError):
    """The definition cannot run here; nothing was started."""

    hint = "fix the pipeline module under pipeline_defs/, render, deploy, then run again"


class UnsupportedStep(ExecutorError):
    """A step type the local executor does not run; refused before any step starts."""


class BrokenWiring(ExecutorError):
    """A reference between steps, parameters or outputs that cannot resolve (a broken definition)."""


class StepFailed(Exception):
    """A step ended Failed; the message is its FailureReason (with the last lines of its log, if any)."""

    def __init__(self, reason: str, log_tail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.log_tail = log_tail
