"""The app's configuration, from the environment only (APP_* plus the standard AWS_REGION)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from prediction_service.errors import SettingsError


class Settings(BaseSettings):
    """Every setting the service reads; the App stack sets them in the task definition."""

    model_config = SettingsConfigDict(
        env_prefix="APP_", extra="ignore", frozen=True, validate_by_name=True, validate_by_alias=True
    )

    stage: str = Field(min_length=1, description="the stage this task serves (dev, prod)")
    endpoint_name: str = Field(min_length=1, description="the stage's SageMaker endpoint")
    db_secret_arn: str = Field(min_length=1, description="Secrets Manager secret with the RDS credentials")
    region: str = Field(
        min_length=1,
        validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION", "APP_REGION"),
        description="the AWS region (ECS sets AWS_REGION)",
    )
    model_id: str = Field(default="unpinned", description="the model the release pins (its package ARN or name)")
    # "sagemaker" (InvokeEndpoint), or "package.module:factory" returning an EndpointInvoker.
    invoker: str = "sagemaker"
    endpoint_timeout_s: float = Field(default=10.0, gt=0, le=60)
    db_pool_max: int = Field(default=5, ge=1, le=50)
    db_timeout_s: float = Field(default=5.0, gt=0, le=60)
    host: str = "0.0.0.0"  # noqa: S104 (in a container, behind the load balancer)
    port: int = Field(default=8080, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # otlp: to the ADOT collector sidecar (OTEL_EXPORTER_OTLP_ENDPOINT, default localhost:4318);
    # file: JSON lines to trace_file (the embedded target, tests); none: tracing off.
    trace_exporter: Literal["otlp", "file", "none"] = "otlp"
    trace_file: Path | None = None
    graceful_shutdown_s: int = Field(default=20, ge=1, le=120)

    @model_validator(mode="after")
    def _trace_file_for_file_export(self) -> Settings:
        if self.trace_exporter == "file" and self.trace_file is None:
            raise ValueError("APP_TRACE_FILE must name a file when APP_TRACE_EXPORTER is file")
        return self

    @field_validator("db_secret_arn")
    @classmethod
    def _secret_arn(cls, value: str) -> str:
        if not value.startswith("arn:") or ":secretsmanager:" not in value:
            raise ValueError("must be a Secrets Manager secret ARN (arn:aws:secretsmanager:...)")
        return value


def _env_name(loc: tuple) -> str:
    if not loc:
        return "(settings)"
    field = str(loc[0])
    if field == "region" or field.isupper():  # the region comes by its AWS names
        return "AWS_REGION"
    return f"APP_{field.upper()}"


def load_settings(**overrides: object) -> Settings:
    """The settings from the environment, or SettingsError naming the first variable to fix."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        message = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] == "missing":
            message = "is not set"
        where = _env_name(first["loc"])
        line = message if message.startswith("APP_") else f"{where} {message}"
        raise SettingsError(f"{line} (set it in the task's environment)") from None
