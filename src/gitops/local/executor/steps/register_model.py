"""RegisterModel steps: a model package in the embedded registry with the definition's status, metrics and spec.

Before CreateModelPackage, every S3 URI the package points at (model data, metrics reports) is
read back: a package pointing at nothing is broken wiring, not a registration.
"""

from __future__ import annotations

import hashlib
from typing import Any

from gitops.local.executor.errors import StepFailed, UnsupportedStep
from gitops.local.executor.registry import DefinitionStep, StepContext, StepKind, StepOutcome
from gitops.local.executor.steps.processing import parse_json
from gitops.local.executor.storage import read_object

# Members of the definition's Arguments that CreateModelPackage takes as they are.
PASSED = (
    "ModelPackageGroupName",
    "ModelPackageDescription",
    "InferenceSpecification",
    "ModelApprovalStatus",
    "ModelMetrics",
    "DriftCheckBaselines",
    "MetadataProperties",
    "CustomerMetadataProperties",
    "Domain",
    "Task",
    "SamplePayloadUrl",
    "SkipModelValidation",
    "ModelCard",
)


def stand_in_digest(image: str) -> str:
    """A digest for an image tag where no registry can resolve it (the embedded target): sha256 of the tag."""
    return "sha256:" + hashlib.sha256(image.encode()).hexdigest()


def check(step: DefinitionStep) -> None:
    if "ModelPackageGroupName" not in step.arguments:
        raise UnsupportedStep(f"{step.where}: not run locally: an unversioned model package (no ModelPackageGroupName)")
    if not step.arguments.get("InferenceSpecification", {}).get("Containers"):
        raise UnsupportedStep(f"{step.where}: no InferenceSpecification.Containers to register")


def _metric_uris(metrics: Any) -> list[str]:
    if isinstance(metrics, dict):
        found = [metrics["S3Uri"]] if isinstance(metrics.get("S3Uri"), str) else []
        return found + [uri for value in metrics.values() for uri in _metric_uris(value)]
    return []


def run(ctx: StepContext) -> StepOutcome:
    args = ctx.arguments
    where = ctx.step.where
    for container in args["InferenceSpecification"]["Containers"]:
        if "ModelDataUrl" in container:
            read_object(ctx.s3, container["ModelDataUrl"], f"{where}: ModelDataUrl")
    metrics = {}
    for uri in _metric_uris(args.get("ModelMetrics", {})):
        metrics[uri] = parse_json(read_object(ctx.s3, uri, f"{where}: ModelMetrics"), f"{where}: {uri}")
    request = {key: args[key] for key in PASSED if key in args and args[key] not in ({}, None)}
    # SageMaker resolves each container's image tag to its digest at registration (ImageDigest); with
    # no registry here, the digest is a stand-in derived from the reference, and the step says so.
    stand_ins = []
    if "InferenceSpecification" in request:
        containers = [dict(c) for c in request["InferenceSpecification"]["Containers"]]
        for container in containers:
            if "ImageDigest" not in container and "@" not in str(container.get("Image", "")):
                container["ImageDigest"] = stand_in_digest(str(container["Image"]))
                stand_ins.append(str(container["Image"]))
        request["InferenceSpecification"] = {**request["InferenceSpecification"], "Containers": containers}
    if "ModelMetrics" in request:  # empty Bias / Explainability sections are not accepted by the API
        request["ModelMetrics"] = {k: v for k, v in request["ModelMetrics"].items() if v}
    try:
        created = ctx.sagemaker.create_model_package(**request)
    except ctx.sagemaker.exceptions.ClientError as exc:
        raise StepFailed(f"{where}: CreateModelPackage refused: {exc}") from None
    arn = created["ModelPackageArn"]
    return StepOutcome(
        {"ModelPackageArn": arn, "ModelApprovalStatus": request.get("ModelApprovalStatus")},
        {
            "ModelPackageArn": arn,
            "ModelApprovalStatus": request.get("ModelApprovalStatus"),
            "metrics_read": list(metrics),
            "image_digest": f"stand-in for {', '.join(stand_ins)} (no registry here)" if stand_ins else "given",
        },
    )


KIND = StepKind("RegisterModel", check, run, properties=("ModelPackageArn",))
