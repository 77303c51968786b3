"""Build SageMaker Pipeline definitions from pipeline_defs/, offline, into canonical JSON."""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops.config import StageConfig, kms_alias_arn
from gitops.errors import PipelineDefinitionError
from gitops.release.assets import AssetRegistry, deterministic_tar_gz
from gitops.release.entrypoints import check_entrypoints

PIPELINE_DEFS = "pipeline_defs"


@dataclass
class PipelineContext:
    """What a pipeline module's build(ctx) receives: the stage, a session, and asset registration.

    Step code must go through ctx.asset()/ctx.source_archive(): they return the S3 URI the code
    will have once deployed (s3://<artifact bucket>/assets/<sha256>/<file>) so the definition is
    a pure function of the code, and the SDK never has to upload anything while building.
    """

    name: str
    stage: StageConfig
    pipeline_dir: Path
    session: Any  # sagemaker.core.workflow.pipeline_context.PipelineSession
    registry: AssetRegistry
    # S3 URI -> the repository path it was registered from, so errors can name the source.
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def pipeline_name(self) -> str:
        return self.stage.pipeline_name(self.name)

    @property
    def region(self) -> str:
        return self.stage.region

    @property
    def role_arn(self) -> str:
        return self.stage.sagemaker_execution_role_arn

    @property
    def bucket(self) -> str:
        return self.stage.artifact_bucket_name

    @property
    def kms_key(self) -> str:
        return kms_alias_arn(self.stage)

    def s3_uri(self, *parts: str) -> str:
        return "s3://" + "/".join([self.bucket, *parts])

    def _resolve(self, relpath: str) -> Path:
        path = (self.pipeline_dir / relpath).resolve()
        if not path.exists():
            shown = Path(PIPELINE_DEFS) / self.name / relpath
            raise PipelineDefinitionError(f"{shown}: step code not found (pipeline '{self.name}' refers to it)")
        return path

    def asset(self, relpath: str) -> str:
        """Register one file (relative to the pipeline's directory); return its deployed S3 URI."""
        path = self._resolve(relpath)
        if not path.is_file():
            raise PipelineDefinitionError(f"{path}: expected a file, found a directory; use source_archive()")
        asset = self.registry.add(path.name, path.read_bytes())
        return self._registered(asset.release_path, relpath)

    def source_archive(self, reldir: str, filename: str = "sourcedir.tar.gz") -> str:
        """Register a directory as a deterministic tar.gz (script-mode source_dir); return its S3 URI."""
        path = self._resolve(reldir)
        if not path.is_dir():
            raise PipelineDefinitionError(f"{path}: expected a directory of step code")
        asset = self.registry.add(filename, deterministic_tar_gz(path))
        return self._registered(asset.release_path, reldir)

    def _registered(self, release_path: str, relpath: str) -> str:
        uri = self.s3_uri(release_path)
        self.sources[uri] = os.path.normpath(Path(PIPELINE_DEFS) / self.name / relpath)
        return uri


def discover_pipelines(root: Path) -> list[str]:
    """Names of the pipeline packages: directories of pipeline_defs/ holding a pipeline.py."""
    base = root / PIPELINE_DEFS
    return sorted(p.parent.name for p in base.glob("*/pipeline.py"))


@contextlib.contextmanager
def offline_sagemaker(region: str) -> Iterator[None]:
    """Environment in which the SageMaker SDK can build definitions with no AWS account.

    An in-process moto mock answers every AWS call the SDK makes (region lookups, the default
    bucket); nothing leaves the machine and nothing is written to a real account.
    """
    from moto import mock_aws

    # An endpoint override (the embedded target exports AWS_ENDPOINT_URL) would send the SDK's calls past the mock.
    endpoints = [k for k in os.environ if k == "AWS_ENDPOINT_URL" or k.startswith("AWS_ENDPOINT_URL_")]
    saved = {k: os.environ.get(k) for k in [*_OFFLINE_ENV, *endpoints]}
    for key in endpoints:
        del os.environ[key]
    os.environ.update(_OFFLINE_ENV | {"AWS_DEFAULT_REGION": region, "AWS_REGION": region})
    try:
        with mock_aws():
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


_OFFLINE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "SAGEMAKER_VALIDATE_ROLE": "false",
    "SAGEMAKER_DISABLE_TELEMETRY": "true",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def _load_module(root: Path, name: str) -> Any:
    path = root / PIPELINE_DEFS / name / "pipeline.py"
    shown = Path(PIPELINE_DEFS) / name / "pipeline.py"
    module_name = f"_gitops_pipeline_{name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise PipelineDefinitionError(f"{shown}: cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    if str(root) not in sys.path:  # pipelines share pipeline_defs/features.py and common.py
        sys.path.insert(0, str(root))
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # any error in user code is reported against its file
        sys.modules.pop(module_name, None)
        raise PipelineDefinitionError(f"{shown}: import failed: {type(exc).__name__}: {exc}") from exc
    if not callable(getattr(module, "build", None)):
        raise PipelineDefinitionError(f"{shown}: defines no build(ctx) function")
    return module


_FAST_VALIDATION = False


def fast_sdk_config_validation() -> None:
    """Make the SDK's per-lookup config validation cheap (same checks, validator built once).

    The SDK validates its session config against its JSON schema on every config lookup, and
    jsonschema.validate() re-checks the (large) schema itself on each call: ~0.15 s a lookup,
    ~50 lookups a pipeline build. A validator built once performs the same instance checks in
    microseconds; render time for four pipeline builds drops from ~40 s to a few seconds.
    """
    global _FAST_VALIDATION
    if _FAST_VALIDATION:
        return
    import jsonschema
    from sagemaker.core.config.config_manager import SageMakerConfig
    from sagemaker.core.config.config_schema import SAGEMAKER_PYTHON_SDK_CONFIG_SCHEMA as schema

    validator = jsonschema.validators.validator_for(schema)(schema)

    def validate_sagemaker_config(sagemaker_config=None):
        validator.validate(sagemaker_config)

    SageMakerConfig.validate_sagemaker_config = staticmethod(validate_sagemaker_config)
    _FAST_VALIDATION = True


@functools.cache
def _shared_loader() -> Any:
    """botocore's loader caches what it parsed per instance: one instance shares that across sessions."""
    from botocore.loaders import create_loader

    return create_loader()


def make_session(stage: StageConfig) -> Any:
    """A PipelineSession on the current (offline) boto session, with the stage bucket as default."""
    import logging
    import warnings

    import boto3
    from sagemaker.core.workflow.pipeline_context import PipelineSession

    # The SDK narrates at INFO (credentials found, config files, "No Job being started");
    # render has its own progress output, so only the SDK's warnings and errors get through.
    # Set after the import: the SDK configures its loggers when it is imported.
    # The SDK gives its modules loggers of their own, so the parent's level is not enough.
    for name in list(logging.root.manager.loggerDict):
        if name == "sagemaker" or name.startswith("sagemaker."):
            logging.getLogger(name).setLevel(logging.ERROR)
    logging.getLogger("botocore.credentials").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="Running within a PipelineSession")
    fast_sdk_config_validation()

    import botocore.session

    # One data loader for every session of this process: each new session would otherwise parse the
    # service models (SageMaker's is megabytes of JSON) again, once per pipeline and stage.
    botocore_session = botocore.session.get_session()
    botocore_session.register_component("data_loader", _shared_loader())
    boto_session = boto3.Session(botocore_session=botocore_session, region_name=stage.region)
    # An explicit SDK config: no defaults from ~/.config/sagemaker leak into the release, and no
    # telemetry call leaves the machine while rendering.
    sdk_config = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}
    return PipelineSession(
        boto_session=boto_session, default_bucket=stage.artifact_bucket_name, sagemaker_config=sdk_config
    )


def build_pipeline(root: Path, stage: StageConfig, name: str, registry: AssetRegistry) -> dict:
    """Import pipeline_defs/<name>/pipeline.py, call build(ctx), return its validated definition.

    Must run inside offline_sagemaker(stage.region).
    """
    module = _load_module(root, name)
    shown = Path(PIPELINE_DEFS) / name / "pipeline.py"
    ctx = PipelineContext(name, stage, root / PIPELINE_DEFS / name, make_session(stage), registry)
    try:
        pipeline = module.build(ctx)
        definition = json.loads(pipeline.definition())
    except PipelineDefinitionError:
        raise
    except Exception as exc:
        raise PipelineDefinitionError(
            f"{shown}: build(ctx) failed for stage '{stage.stage}': {type(exc).__name__}: {exc}"
        ) from exc
    if getattr(pipeline, "name", None) != ctx.pipeline_name:
        raise PipelineDefinitionError(
            f"{shown}: the Pipeline must be named ctx.pipeline_name ('{ctx.pipeline_name}'),"
            f" not '{getattr(pipeline, 'name', None)}'"
        )
    validate_definition(definition, str(shown))
    check_entrypoints(definition, registry, ctx.bucket, ctx.sources, str(shown))
    _check_no_sdk_uploads(stage, str(shown))
    return definition


def _check_no_sdk_uploads(stage: StageConfig, shown: str) -> None:
    """Everything the definition refers to must be a release asset; an SDK upload would be lost."""
    import boto3

    s3 = boto3.client("s3", region_name=stage.region)
    for bucket in s3.list_buckets().get("Buckets", []):
        for obj in s3.list_objects_v2(Bucket=bucket["Name"]).get("Contents", []):
            raise PipelineDefinitionError(
                f"{shown}: the SageMaker SDK uploaded s3://{bucket['Name']}/{obj['Key']} while building;"
                " pass step code as ctx.asset(...) / ctx.source_archive(...) instead of a local path"
            )


def _iter_steps(steps: list[dict]) -> Iterator[dict]:
    for step in steps:
        yield step
        args = step.get("Arguments") or {}
        if step.get("Type") == "Condition":
            yield from _iter_steps(args.get("IfSteps", []))
            yield from _iter_steps(args.get("ElseSteps", []))


def _iter_refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Get" and isinstance(value, str):
                yield value
            else:
                yield from _iter_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _iter_refs(item)


def validate_definition(definition: dict, shown: str) -> None:
    """Structural checks AWS performs at CreatePipeline that moto and the SDK do not.

    Unique step names, every DependsOn / Steps.<name> / Parameters.<name> reference resolves,
    no step depends on itself, and the graph has no cycle.
    """
    steps = list(_iter_steps(definition.get("Steps", [])))
    if not steps:
        raise PipelineDefinitionError(f"{shown}: the pipeline has no steps")
    names: dict[str, dict] = {}
    for step in steps:
        name = step.get("Name")
        if not name:
            raise PipelineDefinitionError(f"{shown}: a step of type {step.get('Type')} has no name")
        if name in names:
            raise PipelineDefinitionError(f"{shown}: duplicate step name '{name}'; step names must be unique")
        names[name] = step
    params = {p["Name"] for p in definition.get("Parameters", [])}
    edges: dict[str, set[str]] = {name: set() for name in names}
    for name, step in names.items():
        for dep in step.get("DependsOn", []) or []:
            if dep not in names:
                raise PipelineDefinitionError(f"{shown}: step '{name}' depends on unknown step '{dep}'")
            edges[name].add(dep)
        body = {k: v for k, v in step.items() if k not in ("Name",)}
        if step.get("Type") == "Condition":
            # Branch steps are children, not data references of the condition itself.
            body = {"Arguments": {"Conditions": step.get("Arguments", {}).get("Conditions", [])}}
        for ref in _iter_refs(body):
            head, _, rest = ref.partition(".")
            target = rest.split(".", 1)[0].split("[", 1)[0]
            if head == "Steps":
                if target not in names:
                    raise PipelineDefinitionError(f"{shown}: step '{name}' refers to unknown step '{target}'")
                if target == name:
                    raise PipelineDefinitionError(f"{shown}: step '{name}' refers to its own properties")
                edges[name].add(target)
            elif head == "Parameters" and target not in params:
                raise PipelineDefinitionError(f"{shown}: step '{name}' refers to undeclared parameter '{target}'")
    _check_acyclic(edges, shown)


def _check_acyclic(edges: dict[str, set[str]], shown: str) -> None:
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        if state.get(node) == 2:
            return
        if state.get(node) == 1:
            cycle = " -> ".join(trail[trail.index(node) :] + [node])
            raise PipelineDefinitionError(f"{shown}: steps form a cycle: {cycle}")
        state[node] = 1
        for dep in sorted(edges[node]):
            visit(dep, trail + [node])
        state[node] = 2

    for node in sorted(edges):
        visit(node, [])


def canonical_json(data: Any) -> bytes:
    """The one JSON form of the release: sorted keys, 2-space indent, trailing newline."""
    return (json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
