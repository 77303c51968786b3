"""Per-stage settings: load and validate infra/config/<stage>.yaml into a typed StageConfig."""

from __future__ import annotations

import difflib
import functools
import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gitops.errors import ConfigError
from gitops.strict_yaml import YamlError, load_yaml

CONFIG_DIR = Path("infra") / "config"


@functools.cache
def known_regions() -> frozenset[str]:
    """Every region botocore's bundled endpoint and partition data name (no network call)."""
    import botocore.loaders
    from botocore.exceptions import DataNotFoundError

    loader = botocore.loaders.create_loader()
    found: set[str] = set()
    for data in ("endpoints", "partitions"):  # partitions.json names newer regions; older botocore lacks it
        try:
            partitions = loader.load_data(data).get("partitions", [])
        except DataNotFoundError:
            continue
        for partition in partitions:
            found.update(partition.get("regions", {}))
    return frozenset(found)


def _known_region(value: str) -> str:
    # A name pattern let `eu-westt-1` through, and the SDK then failed inside a pipeline module.
    if value not in known_regions():
        close = difflib.get_close_matches(value, sorted(known_regions()), n=1)
        guess = f"; did you mean '{close[0]}'?" if close else ""
        raise ValueError(f"not an AWS region botocore knows{guess}")
    return value


AccountId = Annotated[str, Field(pattern=r"^\d{12}$", description="12-digit AWS account id, quoted")]
Region = Annotated[str, AfterValidator(_known_region)]
MlInstanceType = Annotated[str, Field(pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class NetworkConfig(_Strict):
    vpc_cidr: str = "10.20.0.0/16"
    max_azs: Annotated[int, Field(ge=2, le=3)] = 2
    flow_log_retention_days: Literal[7, 14, 30, 60, 90, 180, 365] = 30

    @field_validator("vpc_cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        net = ipaddress.ip_network(value, strict=True)
        if not net.is_private or not 16 <= net.prefixlen <= 24:
            raise ValueError("must be a private IPv4 CIDR between /16 and /24")
        return value


class TrainingConfig(_Strict):
    processing_instance_type: MlInstanceType = "ml.m5.large"
    training_instance_type: MlInstanceType = "ml.m5.xlarge"
    metric_threshold: Annotated[float, Field(gt=0, le=1)] = 0.7
    model_approval_status: Literal["PendingManualApproval", "Approved"] = "PendingManualApproval"


class InferenceConfig(_Strict):
    instance_type: MlInstanceType = "ml.m5.large"
    initial_instance_count: Annotated[int, Field(ge=1, le=10)] = 1
    min_capacity: Annotated[int, Field(ge=1, le=20)] = 1
    max_capacity: Annotated[int, Field(ge=1, le=40)] = 2
    target_invocations_per_instance: Annotated[int, Field(ge=1, le=100000)] = 70
    latency_alarm_ms: Annotated[int, Field(ge=1)] = 500

    @model_validator(mode="after")
    def _capacity(self) -> InferenceConfig:
        if self.min_capacity > self.max_capacity:
            raise ValueError("min_capacity must not exceed max_capacity")
        return self


class StageConfig(_Strict):
    """One deployment stage (an AWS account + region) and everything that differs per stage."""

    stage: Annotated[str, Field(pattern=r"^[a-z][a-z0-9]{1,9}$")]
    account: AccountId
    region: Region
    project: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{2,20}$")] = "mlops"
    promote_to: str | None = None
    approval_email: str | None = None
    retain_data: bool = True
    log_retention_days: Literal[7, 14, 30, 60, 90, 180, 365, 400, 545, 731] = 90
    network: NetworkConfig = NetworkConfig()
    training: TrainingConfig = TrainingConfig()
    inference: InferenceConfig = InferenceConfig()

    @model_validator(mode="after")
    def _bucket_name_fits(self) -> StageConfig:
        # S3 bucket names are at most 63 characters; the artifact bucket's is the longest derived name.
        if len(self.artifact_bucket_name) > 63:
            raise ValueError(
                f"project + stage too long: bucket name {self.artifact_bucket_name!r} exceeds S3's 63 characters"
            )
        return self

    @field_validator("approval_email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
            raise ValueError("must be an e-mail address")
        return value

    # Names derived once, used by infra and pipelines alike, so they can never drift apart.
    @property
    def prefix(self) -> str:
        return f"{self.project}-{self.stage}"

    @property
    def artifact_bucket_name(self) -> str:
        return f"{self.prefix}-artifacts-{self.account}-{self.region}"

    @property
    def model_package_group_name(self) -> str:
        return f"{self.prefix}-models"

    @property
    def feature_group_name(self) -> str:
        return f"{self.prefix}-customers"

    @property
    def env_repository_name(self) -> str:
        return f"{self.prefix}-env"

    @property
    def sagemaker_execution_role_name(self) -> str:
        return f"{self.prefix}-sagemaker-execution"

    @property
    def sagemaker_execution_role_arn(self) -> str:
        return f"arn:aws:iam::{self.account}:role/{self.sagemaker_execution_role_name}"

    @property
    def release_pipeline_name(self) -> str:
        """The env repository's CodePipeline: Source -> Deploy -> Verify [-> Approve -> Promote]."""
        return f"{self.prefix}-release"

    @property
    def cfn_execution_role_name(self) -> str:
        """CloudFormation's execution role for the stage's stacks (change sets pass it)."""
        return f"{self.prefix}-cfn-exec"

    @property
    def promotion_role_name(self) -> str:
        """In a promotion target's account: the role a source stage's promote build assumes to push."""
        return f"{self.prefix}-promotion"

    def build_role_name(self, verb: str) -> str:
        """The CodeBuild service role of the stage's `verb` project (deploy, verify, promote)."""
        return f"{self.prefix}-{verb}-build"

    # The offline store as the training pipeline reads it (Athena, in the stage's own workgroup).
    @property
    def offline_store_database(self) -> str:
        return "sagemaker_featurestore"  # SageMaker's default Glue database for offline stores

    @property
    def offline_store_table(self) -> str:
        """The feature group's Glue table (Athena names: lower case, underscores)."""
        return self.feature_group_name.replace("-", "_")

    @property
    def athena_workgroup_name(self) -> str:
        """Encrypted with the stage key, results in the artifact bucket, configuration enforced."""
        return f"{self.prefix}-training"

    @property
    def athena_results_uri(self) -> str:
        return f"s3://{self.artifact_bucket_name}/athena-results/"

    @property
    def endpoint_name(self) -> str:
        return f"{self.prefix}-endpoint"

    def pipeline_name(self, pipeline: str) -> str:
        return f"{self.prefix}-{pipeline}".replace("_", "-")


def _format_loc(loc: tuple) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def load_stage_config(path: Path, shown: str | Path | None = None) -> StageConfig:
    """Read and validate one stage file; any problem raises ConfigError naming file (as `shown`) and field."""
    shown = shown or path
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"), str(shown))
    except FileNotFoundError as exc:
        raise ConfigError(f"{shown}: stage config not found") from exc
    except YamlError as exc:
        raise ConfigError(str(exc)) from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{shown}: expected a mapping of settings, got {type(raw).__name__}")
    try:
        config = StageConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = _format_loc(err["loc"])
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        if err["type"] == "extra_forbidden":
            raise ConfigError(f"{shown}: unknown field '{field}'{more}") from exc
        message = err["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{shown}: field '{field}': {message} (got {err.get('input')!r}){more}") from exc
    if config.stage != path.stem:
        raise ConfigError(f"{shown}: field 'stage' is '{config.stage}' but the file is named {path.name}")
    return config


def load_stages(root: Path) -> dict[str, StageConfig]:
    """All stages of the repository at root, in promotion order (a stage before the one it promotes to)."""
    config_dir = root / CONFIG_DIR
    files = sorted(config_dir.glob("*.yaml"))
    if not files:
        raise ConfigError(f"{config_dir}: no stage config files (*.yaml)")
    # Errors name the file as the repository does (infra/config/dev.yaml): short, and the same on every machine.
    stages = {cfg.stage: cfg for cfg in (load_stage_config(f, CONFIG_DIR / f.name) for f in files)}
    for cfg in stages.values():
        if cfg.promote_to is not None and cfg.promote_to not in stages:
            raise ConfigError(
                f"{CONFIG_DIR / (cfg.stage + '.yaml')}: field 'promote_to': no stage '{cfg.promote_to}'"
                f" (have {', '.join(sorted(stages))})"
            )
    ordered: list[str] = []
    targets = {c.promote_to for c in stages.values() if c.promote_to}
    for start in sorted(name for name in stages if name not in targets):
        name: str | None = start
        while name is not None and name not in ordered:
            ordered.append(name)
            name = stages[name].promote_to
    if len(ordered) != len(stages):
        raise ConfigError(f"{CONFIG_DIR}: promote_to forms a cycle among {sorted(set(stages) - set(ordered))}")
    return {name: stages[name] for name in ordered}


def kms_alias_name(config: StageConfig) -> str:
    """The stage key's alias; pipelines and endpoints refer to the key by this name."""
    return f"alias/{config.prefix}"


def kms_alias_arn(config: StageConfig) -> str:
    return f"arn:aws:kms:{config.region}:{config.account}:{kms_alias_name(config)}"
