"""Promotion carries the model: the pinned artifact into the next stage's bucket and registry, checked by sha256.

Chosen over a cross-account resource policy + KMS grant: the next stage (prod) then serves bytes it
holds itself, registered in its own model package group as Approved with the same metrics, so it
never reads dev at run time and keeps serving (and can be restored) after the dev account is gone.
The copy reads the source stage's own verified copy with the source stage's credentials and writes
with the target stage's (on AWS the promote build's assumed promotion role); nothing is trusted
that was not hashed here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops.config import StageConfig
from gitops.model.artifact import StagedArtifact, ensure_stage_artifact, put_artifact
from gitops.model.pin import RELEASE_MODEL, ServedModel, load_release_pin
from gitops.target import Target

SOURCE_PACKAGE = "gitops:source-package"  # customer metadata: the package the pin was proposed from


@dataclass
class CarriedModel:
    stage: str
    artifact: StagedArtifact
    package_arn: str  # the target stage's own Approved package
    registered: bool  # False: an earlier promotion registered it already


def _registered(sm: Any, dest: StageConfig, uri: str) -> str | None:
    """The target group's Approved package already serving `uri`, if an earlier promotion made it."""
    pages = sm.get_paginator("list_model_packages").paginate(
        ModelPackageGroupName=dest.model_package_group_name, ModelApprovalStatus="Approved"
    )
    for page in pages:
        for summary in page["ModelPackageSummaryList"]:
            found = sm.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
            containers = (found.get("InferenceSpecification") or {}).get("Containers") or []
            if any(c.get("ModelDataUrl") == uri for c in containers):
                return str(summary["ModelPackageArn"])
    return None


def _register(sm: Any, s3: Any, dest: StageConfig, model: ServedModel, uri: str) -> str:
    bucket, key = model.stage_artifact(dest)
    metrics_key = key.rsplit("/", 1)[0] + "/evaluation.json"
    report = {"binary_classification_metrics": {k: {"value": v} for k, v in sorted(model.metrics.items())}}
    put_artifact(s3, dest, metrics_key, (json.dumps(report, indent=2, sort_keys=True) + "\n").encode())
    digest = model.image.split("@", 1)[1]
    created = sm.create_model_package(
        ModelPackageGroupName=dest.model_package_group_name,
        ModelPackageDescription=f"promoted from {model.package_arn}",
        ModelApprovalStatus="Approved",
        InferenceSpecification={
            "Containers": [{"Image": model.image, "ImageDigest": digest, "ModelDataUrl": uri}],
            "SupportedContentTypes": ["text/csv", "application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        ModelMetrics={
            "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": f"s3://{bucket}/{metrics_key}"}}
        },
        CustomerMetadataProperties={
            SOURCE_PACKAGE: model.package_arn,
            "artifact_sha256": model.artifact.sha256,
            "training_job": model.training_job or "not recorded",
        },
    )
    return str(created["ModelPackageArn"])


def carry_model(release_dir: Path, source: StageConfig, dest: StageConfig, target: Target) -> CarriedModel | None:
    """Before a promotion's push: the pinned model into dest's bucket (sha256 checked) and registry (Approved).

    None when the release pins no model. Idempotent: a copy in place and a package already
    registered for it are kept.
    """
    if not (release_dir / RELEASE_MODEL).is_file():
        return None
    model = load_release_pin(release_dir).model
    if model is None:
        return None
    source_session = target.session(source)
    source_s3 = target.client(source, "s3", source_session)
    dest_session = target.promotion_session(dest, "promote-model")
    dest_s3 = target.client(dest, "s3", dest_session)
    dest_sm = target.client(dest, "sagemaker", dest_session)
    # Read what the source stage served (its own content-addressed, verified copy), not the training output.
    served = model.model_copy(
        update={"artifact": model.artifact.model_copy(update={"uri": model.stage_artifact_uri(source)})}
    )
    staged = ensure_stage_artifact(served, dest, dest_s3, source_s3)
    existing = _registered(dest_sm, dest, staged.uri)
    if existing is not None:
        return CarriedModel(dest.stage, staged, existing, registered=False)
    return CarriedModel(dest.stage, staged, _register(dest_sm, dest_s3, dest, model, staged.uri), registered=True)
