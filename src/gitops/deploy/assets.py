"""What the stacks stand on: the CDK bootstrap (checked on AWS, stood in for on the embedded target) and the files.

Files (stack assets, pipeline step code) are uploaded with an S3-computed SHA-256 checksum; one
already in place is skipped only when S3's checksum of its bytes (or the bytes hashed here) equals
the release's hash, never on metadata anyone could set.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from gitops.config import kms_alias_arn
from gitops.deploy.aws import AWS_ERRORS, StageClients, error_code
from gitops.deploy.live import object_sha256
from gitops.deploy.plan import StagePlan
from gitops.deploy.report import DeployReport
from gitops.deploy.templates import function_uses
from gitops.errors import DeployError, DeployFailed, aws_error_text
from gitops.progress import Progress
from gitops.release.assets import sha256_bytes

DEFAULT_QUALIFIER = "hnb659fds"  # the CDK's default bootstrap qualifier
_MISSING_OBJECT = ("404", "NoSuchKey", "NotFound")


class Assets:
    """The bootstrap check and the uploads of one stage deploy."""

    def __init__(self, plan: StagePlan, aws: StageClients, report: DeployReport, say: Progress) -> None:
        self.plan = plan
        self.config = plan.config
        self.aws = aws
        self.report = report
        self.say = say

    # -- bootstrap

    def require_bootstrap(self) -> None:
        """On AWS: `cdk bootstrap` must have run in the stage's account and region, recently enough."""
        for qualifier in self.plan.bootstrap_qualifiers:
            name = f"/cdk-bootstrap/{qualifier}/version"
            try:
                version = self.aws.ssm.get_parameter(Name=name)["Parameter"]["Value"]
            except ClientError as exc:
                if error_code(exc) != "ParameterNotFound":
                    raise DeployError(f"stage '{self.config.stage}': reading {name}: {aws_error_text(exc)}") from exc
                raise DeployError(
                    f"stage '{self.config.stage}': account {self.config.account} region {self.config.region} is not"
                    f" CDK-bootstrapped (SSM parameter {name} is missing)",
                    hint=f"run `npx aws-cdk@^2.1148 bootstrap aws://{self.config.account}/{self.config.region}`"
                    " once per account and region, with that account's credentials",
                ) from exc
            if version in self.rejected_bootstrap_versions():
                raise DeployError(
                    f"stage '{self.config.stage}': CDK bootstrap version {version} in account {self.config.account}"
                    " is too old for these templates",
                    hint=f"re-run `npx aws-cdk@^2.1148 bootstrap aws://{self.config.account}/{self.config.region}`"
                    " to upgrade it",
                )

    def rejected_bootstrap_versions(self) -> set[str]:
        """Versions the templates' CheckBootstrapVersion rule rejects (Fn::Contains lists of the rule)."""
        rejected: set[str] = set()
        for stack in self.plan.stacks:
            rule = (stack.template.get("Rules") or {}).get("CheckBootstrapVersion", {})
            for args in function_uses(rule, "Fn::Contains"):
                if isinstance(args, list) and args and isinstance(args[0], list):
                    rejected.update(str(v) for v in args[0])
        return rejected

    def embedded_bootstrap(self) -> None:
        """Embedded target only: there is no `cdk bootstrap` for a moto server, so deploy stands in for it."""
        rejected = {int(v) for v in self.rejected_bootstrap_versions() if str(v).isdigit()}
        version = str(max(rejected | {27}) + 1)
        for qualifier in self.plan.bootstrap_qualifiers or [DEFAULT_QUALIFIER]:
            name = f"/cdk-bootstrap/{qualifier}/version"
            self.aws.ssm.put_parameter(Name=name, Value=version, Type="String", Overwrite=True)
            bucket = self.bootstrap_bucket(qualifier)
            self._ensure_bucket(bucket)
            self.report.embedded_bootstrap += [f"ssm:{name}={version}", f"s3://{bucket}"]
        for stack in self.plan.stacks:
            for asset in stack.file_assets:
                self._ensure_bucket(self.asset_bucket(asset))

    def _ensure_bucket(self, bucket: str) -> None:
        try:
            self.aws.s3.head_bucket(Bucket=bucket)
        except ClientError:
            kwargs: dict[str, Any] = {}
            if self.config.region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.config.region}
            self.aws.s3.create_bucket(Bucket=bucket, **kwargs)

    def bootstrap_bucket(self, qualifier: str | None = None) -> str:
        qualifier = qualifier or (self.plan.bootstrap_qualifiers or [DEFAULT_QUALIFIER])[0]
        return f"cdk-{qualifier}-assets-{self.config.account}-{self.config.region}"

    def asset_bucket(self, asset: dict) -> str:
        bucket = str(asset["bucket"])
        for placeholder, value in (
            ("${AWS::AccountId}", self.config.account),
            ("${AWS::Region}", self.config.region),
            ("${AWS::Partition}", "aws"),
        ):
            bucket = bucket.replace(placeholder, value)
        return bucket

    # -- uploads

    def put(self, bucket: str, key: str, data: bytes, *, encrypt: bool) -> None:
        """Upload with S3 computing (and checking in transit) the object's SHA-256."""
        extra: dict[str, Any] = {"ChecksumAlgorithm": "SHA256"}
        if encrypt:
            extra |= {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_alias_arn(self.config)}
        self.aws.s3.put_object(Bucket=bucket, Key=key, Body=data, **extra)

    def in_place(self, bucket: str, key: str, digest: str) -> bool:
        """True when the object exists and its bytes hash to `digest` (S3's checksum or hashed here)."""
        try:
            found, _how, _head = object_sha256(self.aws.s3, bucket, key)
        except ClientError as exc:
            if error_code(exc) in _MISSING_OBJECT:
                return False
            raise
        return found == digest

    def upload(self, bucket: str, key: str, release_path: str, *, encrypt: bool) -> None:
        data = (self.plan.release_dir / release_path).read_bytes()
        uri = f"s3://{bucket}/{key}"
        try:
            if self.in_place(bucket, key, sha256_bytes(data)):
                self.report.assets_skipped.append(uri)
                return
            self.put(bucket, key, data, encrypt=encrypt)
        except AWS_ERRORS as exc:
            raise DeployFailed(f"uploading {release_path} to {uri}: {aws_error_text(exc)}") from exc
        self.report.assets_uploaded.append(uri)
        self.say(f"uploaded {uri}")

    def upload_stack_assets(self) -> None:
        seen: set[tuple[str, str]] = set()
        for stack in self.plan.stacks:
            for asset in stack.file_assets:
                where = (self.asset_bucket(asset), str(asset["key"]))
                if where not in seen:
                    seen.add(where)
                    self.upload(*where, asset["release_path"], encrypt=False)

    def upload_pipeline_assets(self) -> None:
        bucket = self.config.artifact_bucket_name
        for path in sorted({p for pipeline in self.plan.pipelines for p in pipeline.assets}):
            self.upload(bucket, path, path, encrypt=True)
