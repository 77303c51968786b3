"""Error types of the engine; the CLI catches them once and prints one line plus a hint."""

from __future__ import annotations

import re

# The CLI's first line of an error, "error: " included, is shorter than this; the rest goes after it.
ERROR_LINE_LIMIT = 200


class GitopsError(Exception):
    """Base of every error the CLI reports as one clear line (never a traceback).

    The message is that line: the file, stage or field, and what is wrong. `detail` is the long
    part (a tool's own output, a stack trace of user code), printed after it.
    """

    hint: str = ""
    detail: str = ""

    def __init__(self, message: str, hint: str = "", detail: str = "") -> None:
        super().__init__(message)
        if hint:
            self.hint = hint
        if detail:
            self.detail = detail


def error_lines(exc: GitopsError, limit: int = ERROR_LINE_LIMIT) -> tuple[str, str]:
    """(first line, shorter than `limit` with "error: " before it; the rest): what the CLI prints for exc.

    A message of several lines, or one too long for the line, keeps its start on the line and is
    given whole in the rest, so nothing is lost and the line stays readable.
    """
    message = str(exc).strip() or type(exc).__name__
    first = message.splitlines()[0]
    width = limit - 1 - len("error: ")
    overflow = first != message or len(first) > width
    if len(first) > width:
        first = first[: width - 3].rstrip() + "..."
    rest = [message] if overflow else []
    if exc.detail:
        rest.append(exc.detail.strip())
    return first, "\n".join(rest)


class ConfigError(GitopsError):
    """A stage config file is missing, unparsable or invalid."""

    hint = "fix the named field in the stage config (see infra/config/dev.yaml for a valid example)"


class PipelineDefinitionError(GitopsError):
    """A pipeline module under pipeline_defs/ cannot be imported, built or is an invalid graph."""

    hint = "fix the named pipeline module; each must define build(ctx) returning a sagemaker Pipeline"


class SynthError(GitopsError):
    """The CDK app failed to synthesize."""

    hint = "fix the named stack or construct under infra/"


class ReleaseError(GitopsError):
    """A release directory is missing, incomplete or does not match its manifest."""

    hint = "re-run `gitops render` to produce a complete release"


class DeployError(GitopsError):
    """A stage cannot be deployed: wrong account, missing bootstrap, bad release input."""

    hint = "fix the named input (or credentials) and re-run `gitops deploy`; nothing was changed after the failing step"


class TemplateError(DeployError):
    """A template CloudFormation would reject (moto would not): found before any AWS call."""

    hint = "fix the named resource under infra/ and re-render the release"


class DeployFailed(DeployError):
    """A deploy started and stopped at a failing step (the report says which and why)."""

    hint = "read the stack's events in the CloudFormation console; fix and re-run `gitops deploy` (it converges)"


def aws_error_text(exc: BaseException) -> str:
    """One line from a botocore error (moto sometimes answers with JSON botocore cannot parse)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        err = response["Error"]
        return f"{err.get('Code', 'Error')}: {err.get('Message', '')}".strip()
    text = str(exc)
    match = re.search(r'"message":\s*"((?:[^"\\]|\\.)*)', text)
    if match:
        return match.group(1)
    return (text.strip().splitlines() or [type(exc).__name__])[0]
