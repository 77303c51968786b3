"""Shared fixtures: the repository, its stages, and offline builds of its SageMaker pipelines.

The SageMaker SDK takes seconds to import, so it is imported once per session (sagemaker_sdk)
and pipeline builds are cached per (pipeline, stage) (built_pipeline); build_pipeline_def
builds afresh, for determinism checks.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from gitops.config import StageConfig, load_stages
from gitops.release.assets import AssetRegistry
from gitops.release.pipelines import build_pipeline, fast_sdk_config_validation, offline_sagemaker

ROOT = Path(__file__).resolve().parents[1]

# The headless-browser fixture (tests/browser.py), for tests that look at a page as a person would.
pytest_plugins = ["browser"]


# Fixtures that make a test an integration test: they synthesize the CDK app, build pipelines with
# the SageMaker SDK, run checkov, or start the embedded moto server (seconds each, not milliseconds).
INTEGRATION_FIXTURES = frozenset(
    {"synth", "sagemaker_sdk", "checkov_env", "moto_server", "insecure", "bypasses", "rendered_release", "browser"}
    | {"workflow"}  # tests/pipeline_defs/test_steps_training.py: the three step scripts train on the sample
    | {"postgres", "moto_url"}  # tests/app: a throwaway PostgreSQL cluster, a moto server
    | {"moto", "trained"}  # tests/model: a moto server, a model trained on the sample
    | {"backed_up", "page_file"}  # tests/recovery: a backup of a deployed stage; tests/report: two releases
)
HEAVY_TIERS = ("integration", "slow")
# A module whose every test is in a heavy tier says so at the top; the fast tier does not import it.
_MODULE_TIER = re.compile(rb"^pytestmark = pytest\.mark\.(integration|slow)\b", re.MULTILINE)
# tests/infra parametrizes over the CDK stack specs at import time (the CDK costs seconds per process).
_HEAVY_DIRS = {ROOT / "tests" / "infra"}


def pytest_addoption(parser) -> None:
    parser.addoption(
        "--fast",
        action="store_true",
        help="the unit tier: leave out integration and slow tests, without importing the modules that hold only those",
    )


def pytest_ignore_collect(collection_path: Path, config) -> bool | None:
    if not config.getoption("fast"):
        return None
    if collection_path in _HEAVY_DIRS:
        return True
    if collection_path.suffix == ".py" and collection_path.name.startswith("test_"):
        return bool(_MODULE_TIER.search(collection_path.read_bytes())) or None
    return None


def pytest_collection_modifyitems(config, items) -> None:
    """Tiers by what a test needs, so nobody has to remember to mark it; `--fast` keeps the unit tier."""
    for item in items:
        if INTEGRATION_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
    if config.getoption("fast"):
        heavy = [item for item in items if any(item.get_closest_marker(tier) for tier in HEAVY_TIERS)]
        if heavy:
            config.hook.pytest_deselected(items=heavy)
            items[:] = [item for item in items if item not in heavy]


@pytest.fixture(scope="session", autouse=True)
def _attestation_state(tmp_path_factory) -> Iterator[Path]:
    """Scan attestations and their key in a state directory of the test session, never the user's own."""
    from gitops.machine import STATE_DIR_ENV

    with pytest.MonkeyPatch.context() as patch:
        state = tmp_path_factory.mktemp("attestation-state")
        patch.setenv(STATE_DIR_ENV, str(state))
        yield state


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def stages(repo_root: Path) -> dict[str, StageConfig]:
    return load_stages(repo_root)


@pytest.fixture(scope="session")
def sagemaker_sdk(stages: dict[str, StageConfig]) -> Iterator[ModuleType]:
    """The SageMaker SDK, imported once per session inside the offline environment."""
    region = next(iter(stages.values())).region
    with offline_sagemaker(region):
        import sagemaker.mlops.workflow

        fast_sdk_config_validation()
    yield sagemaker.mlops.workflow


@dataclass(frozen=True)
class BuiltPipeline:
    name: str
    stage: StageConfig
    definition: dict
    registry: AssetRegistry


@pytest.fixture(scope="session")
def build_pipeline_def(repo_root, stages, sagemaker_sdk) -> Callable[[str, str], BuiltPipeline]:
    """build(name, stage): a fresh offline build of pipeline_defs/<name> for a stage."""

    def build(name: str, stage: str) -> BuiltPipeline:
        config = stages[stage]
        registry = AssetRegistry()
        with offline_sagemaker(config.region):
            definition = build_pipeline(repo_root, config, name, registry)
        return BuiltPipeline(name, config, definition, registry)

    return build


@pytest.fixture(scope="session")
def built_pipeline(build_pipeline_def) -> Callable[[str, str], BuiltPipeline]:
    """get(name, stage): the build of pipeline_defs/<name> for a stage, built once per session."""
    cache: dict[tuple[str, str], BuiltPipeline] = {}

    def get(name: str, stage: str) -> BuiltPipeline:
        if (name, stage) not in cache:
            cache[name, stage] = build_pipeline_def(name, stage)
        return cache[name, stage]

    return get


_REQUEST_OPERATIONS = {
    # step type -> (SageMaker API the step calls, members the pipeline service fills in)
    "Processing": ("CreateProcessingJob", {"ProcessingJobName": "job"}),
    "Training": ("CreateTrainingJob", {"TrainingJobName": "job"}),
    "Transform": ("CreateTransformJob", {"TransformJobName": "job"}),
    "RegisterModel": ("CreateModelPackage", {}),
    "Model": ("CreateModel", {"ModelName": "model"}),
}
_EXPRESSIONS = ("Get", "Std:Join", "Std:JsonGet")


def _with_placeholders(node):
    """Pipeline expressions ({"Get": ...}, {"Std:Join": ...}) replaced by a string placeholder."""
    if isinstance(node, dict):
        if len(node) == 1 and next(iter(node)) in _EXPRESSIONS:
            return "pipeline-expression"
        return {key: _with_placeholders(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_with_placeholders(item) for item in node]
    return node


@pytest.fixture(scope="session")
def sagemaker_request_errors() -> Callable[[dict], str]:
    """errors(step): botocore's validation report of a step's Arguments against the API it calls.

    moto and the SDK accept shapes AWS rejects; botocore's service model does not. Pipeline
    expressions become string placeholders. Returns "" when the request is valid.
    """
    import botocore.session
    from botocore.validate import ParamValidator

    model = botocore.session.get_session().get_service_model("sagemaker")

    def errors(step: dict) -> str:
        operation, filled_in = _REQUEST_OPERATIONS[step["Type"]]
        params = {**_with_placeholders(step["Arguments"]), **filled_in}
        report = ParamValidator().validate(params, model.operation_model(operation).input_shape)
        return report.generate_report() if report.has_errors() else ""

    return errors


def load_script(path: Path) -> ModuleType:
    """Import a step script by path (step code is not a package) under a unique module name."""
    schema_dir = str(ROOT / "pipeline_defs")  # on the path as a job's PYTHONPATH puts the schema: `import features`
    if schema_dir not in sys.path:
        sys.path.append(schema_dir)
    name = "_step_" + "_".join(path.with_suffix("").parts[-3:])
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def step_script(repo_root) -> Callable[[str], ModuleType]:
    """script(relpath): a step script under pipeline_defs/ imported as a module (cached)."""
    cache: dict[str, ModuleType] = {}

    def script(relpath: str) -> ModuleType:
        if relpath not in cache:
            cache[relpath] = load_script(repo_root / "pipeline_defs" / relpath)
        return cache[relpath]

    return script


def copy_checkout(dest: Path, *, with_render_cache: bool = True) -> Path:
    """The repository as a fresh clone would have it (tracked + new, not ignored files), at dest.

    With with_render_cache, the render part cache of this checkout comes along when there is one:
    its keys are content digests, so it is valid at any path and spares slow tests a cold render.
    """
    import shutil
    import subprocess

    cache = ROOT / ".gitops" / "cache"
    if with_render_cache and cache.is_dir():
        shutil.copytree(cache, dest / ".gitops" / "cache")

    listed = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


@pytest.fixture(scope="session")
def checkout_copy() -> Callable[[Path], Path]:
    """copy(dest): a copy of the repository as a fresh clone would have it."""
    return copy_checkout
