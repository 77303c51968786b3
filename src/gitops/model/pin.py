"""The model pin: the one reviewed file naming the model every stage serves, validated and carried in the release.

`models/serving.yaml` holds either `model: null` (no endpoint yet, said explicitly) or the model
package it came from, the artifact's S3 URI and sha256, the inference image by digest, and the
evaluation metrics. Render validates it and writes it into the release as `model.json`; deploy
serves exactly that, in every stage, and never asks a registry which model is newest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gitops.config import StageConfig
from gitops.errors import GitopsError
from gitops.strict_yaml import YamlError, load_yaml

PIN_PATH = Path("models") / "serving.yaml"
RELEASE_MODEL = "model.json"
# The key a stage's copy of the pinned artifact lives under, in the stage's own artifact bucket:
# content-addressed, so no later write anywhere can change what a stage serves unnoticed.
STAGE_ARTIFACT_KEY = "models/{sha256}/model.tar.gz"

PACKAGE_ARN = r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:model-package/[A-Za-z0-9](-*[A-Za-z0-9]){0,62}/\d+$"
SHA256 = r"^[0-9a-f]{64}$"
S3_URI = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/\S+$"
# SageMaker pulls inference images from ECR; a tag can be moved, a digest cannot.
IMAGE_BY_DIGEST = r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[a-z0-9][a-z0-9._/-]*@sha256:[0-9a-f]{64}$"
PRIMARY_METRIC = "auc"


class ModelPinError(GitopsError):
    """The model pin is malformed, or the model it names fails a check."""

    hint = f"fix {PIN_PATH} (or re-run `gitops model propose`); nothing was deployed"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class PinnedArtifact(_Strict):
    uri: Annotated[str, Field(pattern=S3_URI, description="where training wrote model.tar.gz")]
    sha256: Annotated[str, Field(pattern=SHA256, description="sha256 of model.tar.gz's bytes, lower-case hex")]


class ServedModel(_Strict):
    """One model, exactly: what it is, where its bytes are, what runs it, how good it was."""

    package_arn: Annotated[str, Field(pattern=PACKAGE_ARN)]
    artifact: PinnedArtifact
    image: Annotated[str, Field(pattern=IMAGE_BY_DIGEST)]
    metrics: dict[str, float]
    training_job: str | None = None
    data: str | None = None  # what the training read (the Athena query or S3 prefix)

    @field_validator("metrics")
    @classmethod
    def _has_primary(cls, value: dict[str, float]) -> dict[str, float]:
        if PRIMARY_METRIC not in value:
            raise ValueError(f"must include '{PRIMARY_METRIC}' (the metric stage thresholds apply to)")
        return value

    @property
    def auc(self) -> float:
        return self.metrics[PRIMARY_METRIC]

    @property
    def group(self) -> str:
        return self.package_arn.split(":model-package/", 1)[1].rsplit("/", 1)[0]

    @property
    def version(self) -> int:
        return int(self.package_arn.rsplit("/", 1)[1])

    @property
    def account(self) -> str:
        return self.package_arn.split(":")[4]

    def stage_artifact(self, config: StageConfig) -> tuple[str, str]:
        """(bucket, key) of the copy stage `config` serves: its own bucket, content-addressed."""
        return config.artifact_bucket_name, STAGE_ARTIFACT_KEY.format(sha256=self.artifact.sha256)

    def stage_artifact_uri(self, config: StageConfig) -> str:
        bucket, key = self.stage_artifact(config)
        return f"s3://{bucket}/{key}"

    def short(self) -> str:
        """One line for progress, diff and status: package version, sha256 and AUC."""
        return f"{self.group}/{self.version} sha256 {self.artifact.sha256[:12]} auc {self.auc:.4f}"


class SampleRequest(_Strict):
    """Records verify sends to the served model: model inputs in training column order."""

    columns: list[str]
    rows: Annotated[list[list[float]], Field(min_length=1, max_length=50)]

    def csv(self) -> bytes:
        return "".join(",".join(repr(v) for v in row) + "\n" for row in self.rows).encode()


class ModelPin(_Strict):
    model: ServedModel | None  # None: no endpoint in any stage yet
    # Added by render from the sample data (not written in the pin file): what verify sends.
    sample: SampleRequest | None = None

    def describe(self) -> str:
        return self.model.short() if self.model else "none pinned (no endpoint)"


_MESSAGES = {
    "package_arn": "not a versioned model package ARN (arn:aws:sagemaker:<region>:<acct>:model-package/<group>/<n>)",
    "image": "must be an ECR image by digest (<ecr repository>@sha256:<64 hex>), not by tag",
    "sha256": "must be 64 lower-case hex characters (sha256 of model.tar.gz)",
    "uri": "must be an s3://bucket/key URI",
}


def parse_pin(raw: Any, shown: str) -> ModelPin:
    """Validate a pin document (the YAML's or model.json's content); ModelPinError names `shown` and the field."""
    if not isinstance(raw, dict) or "model" not in raw:
        raise ModelPinError(f"{shown}: expected a mapping with a 'model' key ('model: null' means no endpoint yet)")
    try:
        return ModelPin.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(part) for part in err["loc"] if not str(part).startswith("function-"))
        leaf = str(err["loc"][-1]) if err["loc"] else ""
        if err["type"] == "extra_forbidden":
            raise ModelPinError(f"{shown}: unknown field '{loc}'") from exc
        if err["type"] == "missing":
            raise ModelPinError(f"{shown}: field '{loc}' is missing") from exc
        message = _MESSAGES.get(leaf) if err["type"] == "string_pattern_mismatch" else None
        message = message or err["msg"].removeprefix("Value error, ")
        got = repr(err.get("input"))
        got = got if len(got) <= 40 else got[:37] + "..."
        raise ModelPinError(f"{shown}: field '{loc}': {message} (got {got})") from exc


def load_pin(root: Path) -> ModelPin:
    """The source tree's pin; a missing file is an error (an empty pin is written, not implied)."""
    path = root / PIN_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ModelPinError(f"{PIN_PATH}: missing; write 'model: null' for no endpoint yet") from exc
    try:
        raw = load_yaml(text, str(PIN_PATH))
    except YamlError as exc:
        raise ModelPinError(str(exc)) from exc
    return parse_pin(raw, str(PIN_PATH))


def release_model_bytes(pin: ModelPin, sample: SampleRequest | None) -> bytes:
    """model.json as the release carries it: the pin plus verify's sample, canonical JSON."""
    body = pin.model_copy(update={"sample": sample}).model_dump(mode="json")
    return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode()


def sample_request(csv_path: Path, columns: tuple[str, ...], rows: int = 5) -> SampleRequest:
    """The first `rows` records of a sample CSV, as model inputs (no id, time or label)."""
    import csv

    with csv_path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        records = [next(reader) for _ in range(rows)]
    return SampleRequest(columns=list(columns), rows=[[float(r[c]) for c in columns] for r in records])


def load_release_pin(release_dir: Path) -> ModelPin:
    """The pin a release carries (its model.json), validated again: the release may have been edited."""
    shown = f"{release_dir / RELEASE_MODEL}"
    try:
        raw = json.loads((release_dir / RELEASE_MODEL).read_bytes())
    except FileNotFoundError as exc:
        raise ModelPinError(f"{shown}: missing from the release (render writes it from {PIN_PATH})") from exc
    except json.JSONDecodeError as exc:
        raise ModelPinError(f"{shown}: not valid JSON (line {exc.lineno}: {exc.msg})") from exc
    return parse_pin(raw, shown)


def check_threshold(model: ServedModel, config: StageConfig, shown: str) -> None:
    """A stage serves nothing under its threshold: the pin's AUC against the stage's metric_threshold."""
    if model.auc < config.training.metric_threshold:
        raise ModelPinError(
            f"{shown}: model {model.group}/{model.version} auc {model.auc:.4f} is under stage"
            f" '{config.stage}' threshold {config.training.metric_threshold}"
        )


def pin_yaml(pin: ModelPin, header: str) -> str:
    """The pin file's text: a comment header, then the model (or null), keys in a fixed order."""
    import yaml

    body = {"model": pin.model.model_dump(mode="json", exclude_none=True) if pin.model else None}
    return header + yaml.safe_dump(body, sort_keys=False, default_flow_style=False)
