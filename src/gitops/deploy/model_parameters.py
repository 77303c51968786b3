"""The Inference stack's model parameters: names shared by infra and deploy, values from the release's pin only."""

from __future__ import annotations

from gitops.config import StageConfig
from gitops.model.pin import ModelPin

MODEL_DATA_PARAMETER = "ModelDataUrl"
MODEL_IMAGE_PARAMETER = "ModelImage"
MODEL_SHA256_PARAMETER = "ModelSha256"
MODEL_PACKAGE_PARAMETER = "ModelPackageArn"
MODEL_PARAMETERS = {
    MODEL_DATA_PARAMETER: "The stage's content-addressed copy of the pinned model.tar.gz; empty means no endpoint",
    MODEL_IMAGE_PARAMETER: "The pinned inference image, by digest",
    MODEL_SHA256_PARAMETER: "sha256 of the pinned model.tar.gz",
    MODEL_PACKAGE_PARAMETER: "The model package the pin was proposed from (a record; not read at deploy)",
}
# What a parameter holds while nothing is pinned (cfn-lint checks an image reference is non-empty).
MODEL_PARAMETER_DEFAULTS = {MODEL_IMAGE_PARAMETER: "none"}
MODEL_SHA256_TAG = "gitops:model-sha256"
MODEL_PACKAGE_TAG = "gitops:model-package"


def model_parameter_values(pin: ModelPin, config: StageConfig) -> dict[str, str]:
    """What deploy passes: exactly the pin (all empty when nothing is pinned)."""
    model = pin.model
    if model is None:
        return {name: MODEL_PARAMETER_DEFAULTS.get(name, "") for name in MODEL_PARAMETERS}
    return {
        MODEL_DATA_PARAMETER: model.stage_artifact_uri(config),
        MODEL_IMAGE_PARAMETER: model.image,
        MODEL_SHA256_PARAMETER: model.artifact.sha256,
        MODEL_PACKAGE_PARAMETER: model.package_arn,
    }
