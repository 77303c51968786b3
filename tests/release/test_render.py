"""`gitops render` end to end: the summary, byte-identical releases, and bad input that changes nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gitops.errors import ConfigError, PipelineDefinitionError
from gitops.release.manifest import load_release
from gitops.release.render import render_release

ROOT = Path(__file__).resolve().parents[2]
GITOPS = [sys.executable, "-m", "gitops"]

pytestmark = pytest.mark.slow


def tree(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def checkout(tmp_path_factory, checkout_copy) -> Path:
    """A checkout at one path with a release rendered in it (its part cache warm for later tests)."""
    root = checkout_copy(tmp_path_factory.mktemp("checkout-a"))
    render_release(root, root / "release")
    return root


def test_release_layout_and_summary(checkout: Path):
    manifest = load_release(checkout / "release")
    assert list(manifest.stages) == ["dev", "prod"]
    for stage in manifest.stages.values():
        assert set(stage.stacks) >= {"Base", "Network", "MLOps", "Inference"}
        assert set(stage.pipelines) == {"training", "feature_ingestion"}
        assert all(s.resources > 0 for s in stage.stacks.values())
    files = set(manifest.files)
    assert "stages/dev/templates/MLOps.template.json" in files
    assert "stages/prod/pipelines/training.json" in files
    assert manifest.engine_wheel in files and manifest.engine_wheel.endswith(".whl")
    assert any(f.startswith("assets/") and f.endswith(".py") for f in files)
    # Canonical JSON: sorted keys, 2-space indent, trailing newline.
    raw = (checkout / "release/stages/dev/pipelines/training.json").read_text()
    assert raw == json.dumps(json.loads(raw), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def test_same_bytes_from_another_checkout_path_without_cache(checkout: Path, tmp_path: Path, checkout_copy):
    other = checkout_copy(tmp_path / "somewhere" / "else")
    result = render_release(other, other / "release", use_cache=False)
    first = load_release(checkout / "release")
    assert result.manifest.release_id == first.release_id
    assert tree(other / "release") == tree(checkout / "release")


def test_warm_render_is_cached_and_leaves_the_release_untouched(checkout: Path):
    before = tree(checkout / "release")
    result = render_release(checkout, checkout / "release")
    assert result.unchanged
    assert set(result.cached) >= {"infra", "pipelines-dev", "pipelines-prod", "engine-wheel"}
    assert tree(checkout / "release") == before


def test_cli_prints_the_summary(checkout: Path):
    done = subprocess.run([*GITOPS, "render", "--json"], cwd=checkout, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert len(data["release_id"]) == 64
    assert data["release_id"] == load_release(checkout / "release").release_id
    assert data["stages"]["dev"]["pipelines"]["training"]["steps"][:3] == ["Preprocess", "Train", "Evaluate"]
    table = subprocess.run([*GITOPS, "render"], cwd=checkout, capture_output=True, text=True)
    assert table.returncode == 0
    for word in ("dev", "prod", "Base", "Network", "MLOps", "Inference", "training", data["release_id"]):
        assert word in table.stdout


# --- bad input: one clear line naming the file, non-zero exit, nothing written -------------------------


@pytest.fixture
def broken(checkout: Path):
    """Yields a function that edits a file of the checkout; restores every edit afterwards."""
    saved: dict[Path, bytes | None] = {}

    def edit(rel: str, text: str) -> Path:
        path = checkout / rel
        saved.setdefault(path, path.read_bytes() if path.exists() else None)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    yield edit
    for path, data in saved.items():
        if data is None:
            shutil.rmtree(path.parent) if path.name == "pipeline.py" else path.unlink()
        else:
            path.write_bytes(data)


def _assert_nothing_written(checkout: Path, before: dict[str, bytes]) -> None:
    assert tree(checkout / "release") == before
    assert not [p for p in checkout.iterdir() if p.name.startswith(".release.")]


BROKEN_PIPELINE = """
from sagemaker.core.workflow.parameters import ParameterString
from sagemaker.mlops.workflow.fail_step import FailStep
from sagemaker.mlops.workflow.pipeline import Pipeline


def build(ctx):
    steps = [FailStep(name="{a}", error_message="x"), FailStep(name="{b}", error_message="y"{dep})]
    return Pipeline(name=ctx.pipeline_name, steps=steps, sagemaker_session=ctx.session)
"""


@pytest.mark.parametrize(
    ("rel", "text", "error", "expected"),
    [
        (
            "pipeline_defs/training/pipeline.py",
            "raise RuntimeError('boom')\n",
            PipelineDefinitionError,
            "pipeline_defs/training/pipeline.py: import failed: RuntimeError: boom",
        ),
        (
            "pipeline_defs/training/pipeline.py",
            "def make(ctx):\n    pass\n",
            PipelineDefinitionError,
            "pipeline_defs/training/pipeline.py: defines no build(ctx) function",
        ),
        (
            "pipeline_defs/zz_broken/pipeline.py",
            BROKEN_PIPELINE.format(a="A", b="A", dep=""),
            PipelineDefinitionError,
            "pipeline_defs/zz_broken/pipeline.py:",
        ),
        (
            "pipeline_defs/zz_broken/pipeline.py",
            BROKEN_PIPELINE.format(a="A", b="B", dep=", depends_on=['Ghost']"),
            PipelineDefinitionError,
            "pipeline_defs/zz_broken/pipeline.py:",
        ),
        (
            "infra/config/prod.yaml",
            "stage: prod\naccount: '222222222222'\nregion: eu-west-1\nmax_cap: 3\n",
            ConfigError,
            "infra/config/prod.yaml: unknown field 'max_cap'",
        ),
    ],
    ids=["module-raises", "no-build", "duplicate-step", "dangling-step", "unknown-config-field"],
)
def test_bad_input_is_named_and_changes_nothing(checkout, broken, rel, text, error, expected):
    before = tree(checkout / "release")
    broken(rel, text)
    with pytest.raises(error) as info:
        render_release(checkout, checkout / "release")
    assert expected in str(info.value)
    _assert_nothing_written(checkout, before)


def test_duplicate_and_dangling_steps_are_explained(checkout, broken):
    broken("pipeline_defs/zz_broken/pipeline.py", BROKEN_PIPELINE.format(a="A", b="A", dep=""))
    with pytest.raises(PipelineDefinitionError, match="duplicate step name 'A'|duplicate names"):
        render_release(checkout, checkout / "release")
    broken("pipeline_defs/zz_broken/pipeline.py", BROKEN_PIPELINE.format(a="A", b="B", dep=", depends_on=['Ghost']"))
    with pytest.raises(PipelineDefinitionError, match="Ghost"):
        render_release(checkout, checkout / "release")


def test_missing_step_script_is_named(checkout, broken):
    path = checkout / "pipeline_defs/training/steps/evaluate.py"
    saved = path.read_bytes()
    path.unlink()
    try:
        before = tree(checkout / "release")
        with pytest.raises(PipelineDefinitionError, match=r"pipeline_defs/training/steps/evaluate.py: step code not"):
            render_release(checkout, checkout / "release")
        _assert_nothing_written(checkout, before)
    finally:
        path.write_bytes(saved)


def test_a_file_the_training_job_runs_missing_from_its_code_archive_fails_render(checkout):
    # Found: with steps/model/train.py deleted the release rendered and scanned clean, though the job runs train.py.
    path = checkout / "pipeline_defs/training/steps/model/train.py"
    saved = path.read_bytes()
    path.unlink()
    try:
        before = tree(checkout / "release")
        with pytest.raises(PipelineDefinitionError) as info:
            render_release(checkout, checkout / "release")
        assert str(info.value) == (
            "pipeline_defs/training/pipeline.py: step 'Train' runs train.py, but its code archive"
            " pipeline_defs/training/steps/model does not hold it (holds: inference.py)"
        )
        _assert_nothing_written(checkout, before)
    finally:
        path.write_bytes(saved)


def test_cli_bad_input_is_one_line_and_exit_1(checkout, broken):
    broken("infra/config/dev.yaml", "stage: dev\naccount: '111111111111'\nregion: eu-west-1\ninference: 3\n")
    done = subprocess.run(
        [*GITOPS, "render"], cwd=checkout, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and "infra/config/dev.yaml: field 'inference'" in lines[0]
    assert lines[1].startswith("hint: ")
    assert "Traceback" not in done.stderr


def test_wrong_flag_is_refused(checkout):
    done = subprocess.run([*GITOPS, "render", "--no-such-flag"], cwd=checkout, capture_output=True, text=True)
    assert done.returncode == 2
    assert "--no-such-flag" in done.stderr
