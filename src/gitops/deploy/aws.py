"""The AWS calls deploy and verify share: the stage's clients, its account check, stack status, polling.

Errors are told apart by their error code; the one exception is noted where it is made.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from gitops.config import StageConfig
from gitops.errors import DeployError, DeployFailed, aws_error_text
from gitops.target import Target

# Stack states, defined once for deploy and verify.
OK_STACK_STATES = ("CREATE_COMPLETE", "UPDATE_COMPLETE")
# A stack in one of these holds no resources and cannot be updated: deploy deletes and re-creates it.
EMPTY_STACK_STATES = ("REVIEW_IN_PROGRESS", "ROLLBACK_COMPLETE")
# A stack in one of these exists and can take a change set.
USABLE_STACK_STATES = (*OK_STACK_STATES, "UPDATE_ROLLBACK_COMPLETE")
# A change set with nothing to do fails with one of these reasons (CloudFormation has no code for it).
NO_CHANGES = ("didn't contain changes", "No updates are to be performed")

# What a failing AWS call raises (moto sometimes answers in a form botocore cannot parse).
AWS_ERRORS: tuple[type[BaseException], ...] = (ClientError, BotoCoreError, ResponseParserError)


def error_code(exc: BaseException) -> str:
    """The AWS error code of a failed call ("" when it has none)."""
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def check_account(sts: Any, config: StageConfig, verb: str = "deploy") -> str:
    """The credentials' account must be the stage's: a prod release never lands in the dev account."""
    try:
        identity = sts.get_caller_identity()
    except AWS_ERRORS as exc:
        raise DeployError(
            f"stage '{config.stage}': cannot determine the AWS account ({aws_error_text(exc)})",
            hint="configure AWS credentials for the stage's account",
        ) from exc
    account = identity["Account"]
    if account != config.account:
        raise DeployError(
            f"refusing to {verb} stage '{config.stage}' (account {config.account}) with credentials of account"
            f" {account} ({identity.get('Arn', '?')})",
            hint=f"use credentials for account {config.account}, e.g. AWS_PROFILE of the {config.stage} account",
        )
    return account


def stack_status(cfn: Any, stack_name: str) -> dict | None:
    """The live stack (describe_stacks entry), or None when it does not exist."""
    try:
        return cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    except ClientError as exc:
        # CloudFormation answers a missing stack with the generic code ValidationError; only its
        # message ("Stack with id X does not exist") tells it from a malformed request.
        if error_code(exc) == "ValidationError" and "does not exist" in aws_error_text(exc):
            return None
        raise


class StageClients:
    """Clients of one stage session (in the stage's account), made on first use: aws.cfn, aws.s3, ..."""

    def __init__(self, target: Target, config: StageConfig) -> None:
        self.target = target
        self.config = config
        self.session = target.session(config)
        self._made: dict[str, Any] = {}

    def __getattr__(self, service: str) -> Any:
        if service.startswith("_"):
            raise AttributeError(service)
        name = {"cfn": "cloudformation"}.get(service, service)
        if name not in self._made:
            self._made[name] = self.target.client(self.config, name, self.session)
        return self._made[name]


def poll(read: Callable[[], Any], done: Callable[[Any], bool], *, delay: float, timeout: float, what: str) -> Any:
    """Call read() every `delay` seconds until done(value); DeployFailed after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise DeployFailed(f"{what}: still not done after {int(timeout)}s")
        time.sleep(delay)
