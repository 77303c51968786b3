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


# Fargate's valid task sizes: vCPU units -> the memory (MiB) each allows
# (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html#fargate-tasks-size).
FARGATE_SIZES: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}


AcmCertificateArn = Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}$")]
CloudFrontCertificateArn = Annotated[
    str, Field(pattern=r"^arn:aws[a-z-]*:acm:us-east-1:\d{12}:certificate/[0-9a-f-]{36}$")
]
CloudFrontWebAclArn = Annotated[
    str, Field(pattern=r"^arn:aws[a-z-]*:wafv2:us-east-1:\d{12}:global/webacl/[\w-]+/[0-9a-f-]{36}$")
]
DomainName = Annotated[str, Field(pattern=r"^([a-z0-9-]+\.)+[a-z]{2,}$")]


class AppAlarmsConfig(_Strict):
    """Thresholds of the serving app's alarms (the CPU alarm is the seed's: over 80 % for 300 s)."""

    cpu_percent: Annotated[int, Field(ge=1, le=100)] = 80
    cpu_seconds: Literal[60, 120, 180, 300, 600, 900] = 300
    error_rate_percent: Annotated[int | float, Field(gt=0, le=100)] = 5
    p90_latency_ms: Annotated[int, Field(ge=1, le=60000)] = 1000


class AppConfig(_Strict):
    """The serving app (App stack): Fargate tasks behind CloudFront, PostgreSQL, alarms and a budget."""

    min_tasks: Annotated[int, Field(ge=1, le=50)] = 1
    max_tasks: Annotated[int, Field(ge=1, le=100)] = 2
    cpu: Literal[256, 512, 1024, 2048, 4096, 8192, 16384] = 256
    memory_mib: Annotated[int, Field(ge=512)] = 512
    target_cpu_percent: Annotated[int, Field(ge=10, le=90)] = 60
    target_requests_per_task: Annotated[int, Field(ge=1, le=100000)] = 200
    db_instance_class: Annotated[str, Field(pattern=r"^db\.[a-z0-9]+\.[a-z0-9]+$")] = "db.t4g.micro"
    db_storage_gib: Annotated[int, Field(ge=20, le=1000)] = 20
    db_multi_az: bool = False
    db_backup_retention_days: Annotated[int, Field(ge=1, le=35)] = 7
    log_retention_days: Literal[7, 14, 30, 60, 90, 180, 365, 400, 545, 731] = 30
    # An ACM certificate in the stage's region: the ALB then listens on HTTPS and CloudFront reaches it over TLS.
    certificate_arn: (
        Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}$")] | None
    ) = None
    # The app's own domain names on CloudFront, with their ACM certificate (CloudFront takes those from us-east-1).
    domain_names: list[DomainName] = Field(default_factory=list)
    viewer_certificate_arn: (
        Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:acm:us-east-1:\d{12}:certificate/[0-9a-f-]{36}$")] | None
    ) = None
    # A WAFv2 web ACL of scope CLOUDFRONT (those live in us-east-1) to attach to the distribution.
    waf_web_acl_arn: (
        Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:wafv2:us-east-1:\d{12}:global/webacl/[\w-]+/[0-9a-f-]{36}$")]
        | None
    ) = None
    alarms: AppAlarmsConfig = AppAlarmsConfig()
    monthly_budget_usd: Annotated[int, Field(ge=1, le=1000000)] = 100

    @model_validator(mode="after")
    def _domain_with_certificate(self) -> AppConfig:
        if bool(self.domain_names) != bool(self.viewer_certificate_arn):
            raise ValueError("domain_names and viewer_certificate_arn go together: set both or neither")
        return self

    @model_validator(mode="after")
    def _tasks_and_size(self) -> AppConfig:
        if self.min_tasks > self.max_tasks:
            raise ValueError(f"min_tasks ({self.min_tasks}) must not exceed max_tasks ({self.max_tasks})")
        allowed = FARGATE_SIZES[self.cpu]
        if self.memory_mib not in allowed:
            steps = {b - a for a, b in zip(allowed, allowed[1:], strict=False)}
            takes = (
                f"{allowed[0]}-{allowed[-1]} MiB in steps of {steps.pop()}"
                if len(steps) == 1
                else ", ".join(map(str, allowed)) + " MiB"
            )
            raise ValueError(
                f"cpu {self.cpu} with memory_mib {self.memory_mib} is not a Fargate task size"
                f" (cpu {self.cpu} takes {takes})"
            )
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
    app: AppConfig = AppConfig()

    @model_validator(mode="after")
    def _bucket_name_fits(self) -> StageConfig:
        # S3 bucket names are at most 63 characters; the artifact bucket's is the longest derived name.
        if len(self.artifact_bucket_name) > 63:
            raise ValueError(
                f"project + stage too long: bucket name {self.artifact_bucket_name!r} exceeds S3's 63 characters"
            )
        return self

    @model_validator(mode="after")
    def _app_certificate_in_stage(self) -> StageConfig:
        # An ALB takes a certificate of its own account and region only.
        arn = self.app.certificate_arn
        if arn is not None and arn.split(":")[3:5] != [self.region, self.account]:
            raise ValueError(f"app.certificate_arn must be an ACM certificate of {self.account} in {self.region}")
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

    # The serving app (App and AppImages stacks): names the engine's deploy and promote share with infra.
    @property
    def app_repository_name(self) -> str:
        """The stage's ECR repository of the app image (deploy runs <repository>@sha256:...)."""
        return f"{self.prefix}-app"

    @property
    def app_cluster_name(self) -> str:
        return f"{self.prefix}-app"

    @property
    def app_service_name(self) -> str:
        return f"{self.prefix}-app"

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
        got = err.get("input")
        shown_input = "" if isinstance(got, dict | list) else f" (got {got!r})"  # a whole section says nothing
        raise ConfigError(f"{shown}: field '{field}': {message}{shown_input}{more}") from exc
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
