"""CodeBuild buildspec 0.2: the schema, and parsing and validating one (infra checks with it at synth time).

Every key of the buildspec reference is known, so a typo is named with the keys allowed there.
How a validated buildspec runs on this machine, with CodeBuild's phase semantics, is
gitops.local.buildspec_runner.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from gitops.errors import GitopsError
from gitops.strict_yaml import YamlError, load_yaml

PHASES = ("install", "pre_build", "build", "post_build")


class BuildspecError(GitopsError):
    """A buildspec is unreadable or not a valid version 0.2 buildspec."""

    hint = "fix the named key (reference: https://docs.aws.amazon.com/codebuild/latest/userguide/build-spec-ref.html)"


# --- the buildspec model -------------------------------------------------------------------------


def _version(value: object) -> str:
    if value in (0.2, "0.2"):
        return "0.2"
    if value in (0.1, "0.1"):
        raise ValueError("only version 0.2 is supported (0.1 runs every command in a separate shell)")
    raise ValueError(f"must be 0.2 (got {value!r})")


def _yes_no(value: object) -> object:
    # YAML 1.1 reads an unquoted yes/no as a boolean; CodeBuild accepts both spellings.
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("yes", "no", "true", "false"):
        return value.lower() in ("yes", "true")
    raise ValueError(f"must be yes or no (got {value!r})")


def _scalar(value: object) -> object:
    # An unquoted number (python: 3.11, RETRIES: 3) is read by YAML as a number; CodeBuild takes its text.
    if isinstance(value, bool) or value is None:
        raise ValueError(f"must be a string (got {value!r}; quote it)")
    if isinstance(value, int | float):
        return str(value)
    return value


YesNo = Annotated[bool, BeforeValidator(_yes_no)]
Scalar = Annotated[str, BeforeValidator(_scalar)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)


class Phase(_Spec):
    run_as: str | None = Field(None, alias="run-as")
    on_failure: Literal["ABORT", "CONTINUE"] | None = Field(None, alias="on-failure")
    commands: list[str]
    finally_: list[str] | None = Field(None, alias="finally")


class InstallPhase(Phase):
    runtime_versions: dict[str, Scalar] | None = Field(None, alias="runtime-versions")


class Phases(_Spec):
    install: InstallPhase | None = None
    pre_build: Phase | None = None
    build: Phase | None = None
    post_build: Phase | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Phases:
        if not any(getattr(self, name) for name in PHASES):
            raise ValueError("must define at least one of install, pre_build, build, post_build")
        return self

    def get(self, name: str) -> Phase | None:
        return getattr(self, name)


class Env(_Spec):
    shell: Literal["bash", "/bin/sh", "powershell.exe", "cmd.exe"] | None = None
    variables: dict[str, Scalar] = Field(default_factory=dict)
    parameter_store: dict[str, str] = Field(default_factory=dict, alias="parameter-store")
    exported_variables: list[str] = Field(default_factory=list, alias="exported-variables")
    secrets_manager: dict[str, str] = Field(default_factory=dict, alias="secrets-manager")
    git_credential_helper: YesNo = Field(False, alias="git-credential-helper")


class Proxy(_Spec):
    upload_artifacts: YesNo = Field(False, alias="upload-artifacts")
    logs: YesNo = False


class Cache(_Spec):
    paths: list[str] = Field(default_factory=list)
    key: str | None = None
    fallback_keys: list[str] | None = Field(None, alias="fallback-keys")
    action: Literal["restore", "save"] | None = None


class ArtifactSet(_Spec):
    files: list[str]
    name: str | None = None
    discard_paths: YesNo = Field(False, alias="discard-paths")
    base_directory: str | None = Field(None, alias="base-directory")
    exclude_paths: list[str] = Field(default_factory=list, alias="exclude-paths")
    enable_symlinks: YesNo = Field(False, alias="enable-symlinks")
    s3_prefix: str | None = Field(None, alias="s3-prefix")


class Artifacts(ArtifactSet):
    files: list[str] = Field(default_factory=list)
    secondary_artifacts: dict[str, ArtifactSet] = Field(default_factory=dict, alias="secondary-artifacts")

    @model_validator(mode="after")
    def _something(self) -> Artifacts:
        if not self.files and not self.secondary_artifacts:
            raise ValueError("needs 'files' (or 'secondary-artifacts')")
        return self


ReportFormat = Literal[
    "JUNITXML",
    "CUCUMBERJSON",
    "TESTNGXML",
    "VISUALSTUDIOTRX",
    "NUNITXML",
    "NUNIT3XML",
    "CLOVERXML",
    "COBERTURAXML",
    "JACOCOXML",
    "SIMPLECOV",
]


class ReportGroup(_Spec):
    files: list[str]
    base_directory: str | None = Field(None, alias="base-directory")
    discard_paths: YesNo = Field(False, alias="discard-paths")
    file_format: ReportFormat = Field("JUNITXML", alias="file-format")


class Buildspec(_Spec):
    """A validated buildspec; `source` names where it came from (file or template) for messages."""

    _source: str = PrivateAttr("")

    version: Annotated[str, BeforeValidator(_version)]
    run_as: str | None = Field(None, alias="run-as")
    env: Env = Field(default_factory=Env)
    proxy: Proxy | None = None
    batch: dict[str, Any] | None = None
    phases: Phases
    reports: dict[str, ReportGroup] = Field(default_factory=dict)
    artifacts: Artifacts | None = None
    cache: Cache | None = None

    @property
    def source(self) -> str:
        return self._source


# --- parsing --------------------------------------------------------------------------------------


def _key_path(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _unwrap_model(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The model a field holds (through Optional/list/dict) and whether a dict key comes first in a loc."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _unwrap_model(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _unwrap_model(arg)
            if found[0] is not None:
                return found
        return None, False
    if origin is dict:
        return _unwrap_model(typing.get_args(annotation)[1])[0], True
    if origin is list:
        return _unwrap_model(typing.get_args(annotation)[0])[0], False
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    return None, False


def _allowed_keys(path: tuple) -> list[str]:
    model: type[BaseModel] | None = Buildspec
    parts = list(path)
    while parts and model is not None:
        part = parts.pop(0)
        if isinstance(part, int):
            continue
        field = next((f for name, f in model.model_fields.items() if (f.alias or name) == part), None)
        if field is None:
            return []
        model, keyed = _unwrap_model(field.annotation)
        if keyed and parts:
            parts.pop(0)
    if model is None:
        return []
    return [f.alias or name for name, f in model.model_fields.items()]


def _problem(err: Any) -> str:
    kind, loc = err["type"], err["loc"]
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        if loc[-1] == "runtime-versions":
            return "unknown key (runtime-versions is only allowed under phases.install)"
        allowed = _allowed_keys(loc[:-1])
        return "unknown key" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
    if kind == "value_error":
        return err["msg"].removeprefix("Value error, ")
    value = err.get("input")
    if kind == "string_type" and isinstance(value, dict):
        return f"must be a string (got a mapping {value!r}: quote a command that contains ': ')"
    if kind == "string_type" and isinstance(value, bool | int | float):
        return f"must be a string (got {type(value).__name__} {value!r}: quote it)"
    return f"{err['msg'][:1].lower()}{err['msg'][1:]} (got {type(value).__name__} {value!r})"


def validate_buildspec(data: object, source_name: str) -> Buildspec:
    """Validate an already-parsed buildspec; any problem is a BuildspecError naming source and key."""
    if not isinstance(data, dict):
        raise BuildspecError(f"{source_name}: expected a mapping with 'version: 0.2', got {type(data).__name__}")
    bad = next((key for key in data if not isinstance(key, str)), None)
    if bad is not None:
        raise BuildspecError(f"{source_name}: {bad!r}: unknown key")
    try:
        spec = Buildspec.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        # Report the top-level version first: a wrong version explains every other complaint.
        err = next((e for e in errors if e["loc"] == ("version",)), errors[0])
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise BuildspecError(f"{source_name}: {_key_path(err['loc'])}: {_problem(err)}{more}") from exc
    spec._source = source_name
    return spec


def parse_buildspec(text: str, source_name: str) -> Buildspec:
    """Parse buildspec text (YAML, or the JSON CDK writes inline) and validate it."""
    try:
        data = load_yaml(text, source_name)
    except YamlError as exc:
        raise BuildspecError(str(exc)) from exc
    return validate_buildspec(data, source_name)


def load_buildspec(path: Path) -> Buildspec:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise BuildspecError(f"{path}: buildspec not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise BuildspecError(f"{path}: cannot read the buildspec ({exc})") from exc
    return parse_buildspec(text, str(path))
