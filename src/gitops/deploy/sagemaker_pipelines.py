"""SageMaker pipelines and the model package group: upserted from the release's definitions, read back by hash."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from gitops.config import StageConfig
from gitops.deploy.aws import AWS_ERRORS, error_code
from gitops.deploy.plan import RELEASE_TAG, STAGE_TAG, PipelinePlan
from gitops.deploy.report import PipelineResult
from gitops.deploy.templates import compact_json
from gitops.errors import DeployFailed, aws_error_text
from gitops.progress import Progress
from gitops.release.assets import sha256_bytes
from gitops.release.pipelines import canonical_json

# SageMaker's code for a pipeline or group that does not exist (moto answers ValidationException).
_NOT_FOUND = ("ResourceNotFound", "ValidationException")


def definition_sha256(text: str | None) -> str | None:
    """sha256 of a pipeline definition in the release's canonical form (None if it is not JSON)."""
    try:
        return sha256_bytes(canonical_json(json.loads(text or "")))
    except ValueError:
        return None


def describe_pipeline(sm: Any, name: str) -> dict | None:
    """DescribePipeline, or None when the pipeline does not exist."""
    return _describe_or_none(lambda: sm.describe_pipeline(PipelineName=name))


def describe_model_package_group(sm: Any, name: str) -> dict | None:
    """DescribeModelPackageGroup, or None when the group does not exist."""
    return _describe_or_none(lambda: sm.describe_model_package_group(ModelPackageGroupName=name))


def _describe_or_none(describe: Callable[[], dict]) -> dict | None:
    try:
        return describe()
    except ClientError as exc:
        if _missing(exc):
            return None
        raise


def _missing(exc: ClientError) -> bool:
    code = error_code(exc)
    if code == "ResourceNotFound":
        return True
    # SageMaker itself answers some Describe calls for a missing name with ValidationException;
    # only the message tells that apart from a malformed request.
    text = aws_error_text(exc)
    return code in _NOT_FOUND and ("does not exist" in text or "not find" in text or "not found" in text)


def ensure_model_package_group(sm: Any, config: StageConfig, say: Progress) -> str:
    """The stage's model package group exists afterwards; returns what was done, for the report."""
    name = config.model_package_group_name
    try:
        if describe_model_package_group(sm, name) is not None:
            return f"{name}: exists"
        sm.create_model_package_group(
            ModelPackageGroupName=name,
            ModelPackageGroupDescription=f"Models of stage {config.stage}",
            Tags=[{"Key": STAGE_TAG, "Value": config.stage}],
        )
    except AWS_ERRORS as exc:
        raise DeployFailed(f"model package group {name}: {aws_error_text(exc)}") from exc
    say(f"model package group {name}: created")
    return f"{name}: created (outside CloudFormation)"


def upsert_pipeline(
    sm: Any, config: StageConfig, release_id: str, pipeline: PipelinePlan, say: Progress
) -> PipelineResult:
    """Create or update one pipeline to the release's definition, role and tags; unchanged ones are left alone."""
    role = config.sagemaker_execution_role_arn
    definition = compact_json(pipeline.definition).decode("utf-8")
    tags = [{"Key": RELEASE_TAG, "Value": release_id}, {"Key": STAGE_TAG, "Value": config.stage}]
    try:
        current = describe_pipeline(sm, pipeline.pipeline_name)
        if current is None:
            sm.create_pipeline(
                PipelineName=pipeline.pipeline_name,
                PipelineDefinition=definition,
                RoleArn=role,
                Tags=tags,
                ClientRequestToken=uuid.uuid4().hex,
            )
            action = "created"
        else:
            same = definition_sha256(current.get("PipelineDefinition")) == pipeline.sha256
            if same and current.get("RoleArn") == role:
                action = "unchanged"
            else:
                sm.update_pipeline(PipelineName=pipeline.pipeline_name, PipelineDefinition=definition, RoleArn=role)
                action = "updated"
            live_tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=current["PipelineArn"])["Tags"]}
            if any(live_tags.get(t["Key"]) != t["Value"] for t in tags):
                sm.add_tags(ResourceArn=current["PipelineArn"], Tags=tags)
    except AWS_ERRORS as exc:
        raise DeployFailed(f"pipeline {pipeline.pipeline_name} ({pipeline.path}): {aws_error_text(exc)}") from exc
    say(f"pipeline {pipeline.pipeline_name}: {action}")
    return PipelineResult(pipeline.name, pipeline.pipeline_name, action, pipeline.sha256)
