"""Where the loop runs: real AWS (the standard credential chain) or the embedded local target.

One code path for both: every AWS call goes through a boto3 session from Target.session(stage).
On the embedded target that session points at a loopback moto server and holds credentials
assumed into the stage's account, exactly as a cross-account deploy role would on AWS.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from gitops.config import StageConfig
from gitops.errors import GitopsError

LOCAL_DIR_ENV = "GITOPS_LOCAL_DIR"
TARGET_ENV = "GITOPS_TARGET"
DEFAULT_LOCAL_DIR = Path(".gitops") / "local"


class TargetError(GitopsError):
    hint = "start the embedded target with `gitops local up`, or set GITOPS_TARGET=aws with AWS credentials"


@dataclass(frozen=True)
class Target:
    kind: Literal["aws", "local"]
    local_dir: Path | None = None
    endpoint_url: str | None = None

    @property
    def is_local(self) -> bool:
        return self.kind == "local"

    def session(self, stage: StageConfig) -> Any:
        """A boto3 session acting in the stage's account and region."""
        import boto3

        if not self.is_local:
            return boto3.Session(region_name=stage.region)
        base = boto3.Session(
            aws_access_key_id="embedded",
            aws_secret_access_key="embedded",
            region_name=stage.region,
        )
        sts = base.client("sts", endpoint_url=self.endpoint_url)
        creds = sts.assume_role(
            # The stage's deploy build role: what a CodeBuild deploy action runs as in that account.
            RoleArn=f"arn:aws:iam::{stage.account}:role/{stage.build_role_name('deploy')}",
            RoleSessionName="gitops-embedded",
        )["Credentials"]
        return boto3.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            region_name=stage.region,
        )

    def client(self, stage: StageConfig, service: str, session: Any = None) -> Any:
        session = session or self.session(stage)
        return session.client(service, endpoint_url=self.endpoint_url)

    def promotion_session(self, stage: StageConfig, purpose: str) -> Any:
        """A session in `stage`'s account for a promotion's writes (the image, the model).

        On AWS the Promote build assumes TARGET_ROLE_ARN (set by infra) for TARGET_STAGE; anywhere
        else (the embedded target, another stage) it is the stage's own session.
        """
        role = os.environ.get("TARGET_ROLE_ARN")
        if self.is_local or not role or os.environ.get("TARGET_STAGE") != stage.stage:
            return self.session(stage)
        import boto3

        sts = boto3.Session(region_name=stage.region).client("sts")
        creds = sts.assume_role(RoleArn=role, RoleSessionName=f"gitops-{purpose}-{stage.stage}")["Credentials"]
        return boto3.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            region_name=stage.region,
        )

    def repo_credentials(self, stage: StageConfig) -> dict[str, str]:
        """AWS credentials for git on the stage's env repository; empty means the caller's own.

        On AWS a promotion pushes into another account's repository: the Promote build has
        TARGET_STAGE and TARGET_ROLE_ARN (set by infra), and assumes that role for this stage.
        """
        role = os.environ.get("TARGET_ROLE_ARN")
        if self.is_local or not role or os.environ.get("TARGET_STAGE") != stage.stage:
            return {}
        import boto3

        sts = boto3.Session(region_name=stage.region).client("sts")
        creds = sts.assume_role(RoleArn=role, RoleSessionName=f"gitops-promote-{stage.stage}")["Credentials"]
        return {
            "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
            "AWS_SESSION_TOKEN": creds["SessionToken"],
            "AWS_REGION": stage.region,
        }

    def env_repo_url(self, stage: StageConfig) -> str:
        """The git URL of the stage's environment repository."""
        if self.is_local:
            assert self.local_dir is not None
            return str(self.local_dir / "repos" / f"{stage.stage}.git")
        return f"codecommit::{stage.region}://{stage.env_repository_name}"

    def env(self) -> dict[str, str]:
        """Environment variables that make a child `gitops` process use this same target."""
        if not self.is_local:
            return {TARGET_ENV: "aws"}
        assert self.local_dir is not None and self.endpoint_url is not None
        return {TARGET_ENV: "local", LOCAL_DIR_ENV: str(self.local_dir), "AWS_ENDPOINT_URL": self.endpoint_url}


def resolve_target(root: Path | None = None, kind: str | None = None) -> Target:
    """The target named by --target / GITOPS_TARGET (default aws); local needs a running server."""
    kind = kind or os.environ.get(TARGET_ENV, "aws")
    if kind == "aws":
        return Target("aws")
    if kind != "local":
        raise TargetError(f"unknown target '{kind}' (GITOPS_TARGET / --target): use 'aws' or 'local'")
    from gitops.local.embedded import read_server

    local_dir = Path(os.environ.get(LOCAL_DIR_ENV) or (root or Path(".")) / DEFAULT_LOCAL_DIR).resolve()
    server = read_server(local_dir)
    if server is None:
        raise TargetError(f"{local_dir}: the embedded target is not running")
    return Target("local", local_dir, server.endpoint_url)
