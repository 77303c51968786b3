"""Every job of every pipeline gets what its entrypoint imports, in the layout the definition gives it.

For each Processing and Training step of a built definition, the job's container filesystem is
laid out from the definition alone (its asset inputs where their LocalPath or channel says, the
code archive unpacked where the training toolkit unpacks it, its Environment) under a temporary
/opt/ml. Then: every module the entrypoint imports, and what those import in turn, is the
standard library, a package of the scikit-learn image, or a file shipped to the job on its path;
and the entrypoint really starts there (`--help`), outside the repository.
"""

from __future__ import annotations

import ast
import io
import json
import os
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from gitops.release.pipelines import discover_pipelines

ROOT = Path(__file__).resolve().parents[2]
STAGE = "dev"
CONTAINER_ROOT = "/opt/ml"
TOOLKIT_CODE_DIR = "/opt/ml/code"  # where the training toolkit unpacks sagemaker_submit_directory
# What the SageMaker scikit-learn image provides besides the standard library.
IMAGE_PACKAGES = {"boto3", "botocore", "joblib", "numpy", "pandas", "scipy", "sklearn"}


@dataclass
class Job:
    step: str
    entrypoint: Path
    env: dict[str, str]

    @property
    def path(self) -> list[Path]:
        """The script's directory, then the job's PYTHONPATH: where its imports are looked up."""
        extra = [Path(p) for p in self.env.get("PYTHONPATH", "").split(os.pathsep) if p]
        return [self.entrypoint.parent, *extra]


def job_steps(definition: dict) -> list[dict]:
    found = []
    for step in definition["Steps"]:
        found.append(step)
        for branch in ("IfSteps", "ElseSteps"):
            found += step["Arguments"].get(branch, []) if step["Type"] == "Condition" else []
    return [s for s in found if s["Type"] in ("Processing", "Training")]


def lay_out(built, step: dict, root: Path) -> Job:
    """The job's /opt/ml under root, from the definition: asset inputs, unpacked code, environment."""
    bucket = f"s3://{built.stage.artifact_bucket_name}/"

    def on_host(container_path: str) -> Path:
        assert container_path.startswith(CONTAINER_ROOT + "/"), container_path
        return root / container_path.lstrip("/")

    def place(uri, container_dir: str) -> None:
        if isinstance(uri, str) and uri.startswith(bucket + "assets/"):  # an S3Prefix of one object
            asset = built.registry.assets[uri[len(bucket) :]]
            on_host(container_dir).mkdir(parents=True, exist_ok=True)
            (on_host(container_dir) / asset.filename).write_bytes(asset.data)

    args = step["Arguments"]
    if step["Type"] == "Processing":
        for item in args["ProcessingInputs"]:
            if "S3Input" in item:  # a DatasetDefinition (the Athena input) brings data, not code
                place(item["S3Input"]["S3Uri"], item["S3Input"]["LocalPath"])
        entrypoint = on_host(args["AppSpecification"]["ContainerEntrypoint"][-1])
    else:
        for channel in args["InputDataConfig"]:
            place(channel["DataSource"]["S3DataSource"]["S3Uri"], f"/opt/ml/input/data/{channel['ChannelName']}")
        hyper = args["HyperParameters"]
        archive = on_host(json.loads(hyper["sagemaker_submit_directory"]))
        with tarfile.open(fileobj=io.BytesIO(archive.read_bytes()), mode="r:gz") as tar:
            tar.extractall(on_host(TOOLKIT_CODE_DIR), filter="data")
        entrypoint = on_host(TOOLKIT_CODE_DIR) / json.loads(hyper["sagemaker_program"])
    env = {
        key: value.replace(CONTAINER_ROOT, str(root / CONTAINER_ROOT.lstrip("/")))
        for key, value in args.get("Environment", {}).items()
    }
    return Job(step["Name"], entrypoint, env)


def top_level_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def unshipped_imports(job: Job) -> list[str]:
    """Imports of the entrypoint (and of what it imports from the job's files) nothing provides."""
    missing, pending, seen = [], [job.entrypoint], set()
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in sorted(top_level_imports(path) - {"__future__"}):
            if name in sys.stdlib_module_names or name in IMAGE_PACKAGES:
                continue
            shipped = [p for d in job.path for p in (d / f"{name}.py", d / name / "__init__.py") if p.is_file()]
            if shipped:
                pending.append(shipped[0])
            else:
                missing.append(f"{job.step}: {path.name} imports {name!r}, which the job is not given")
    return missing


def start(job: Job, cwd: Path) -> subprocess.CompletedProcess:
    """The entrypoint with --help, with the job's environment only: nothing from this repository on the path."""
    return subprocess.run(
        [sys.executable, "-s", str(job.entrypoint), "--help"],
        cwd=cwd,
        env={"PATH": os.environ.get("PATH", ""), **job.env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("pipeline", discover_pipelines(ROOT))
def test_every_job_is_given_what_its_entrypoint_imports(built_pipeline, pipeline, tmp_path):
    built = built_pipeline(pipeline, STAGE)
    steps = job_steps(built.definition)
    assert steps, f"{pipeline}: no Processing or Training step"
    problems = []
    for step in steps:
        job = lay_out(built, step, tmp_path / step["Name"])
        assert job.entrypoint.is_file(), f"{step['Name']}: entrypoint {job.entrypoint} not shipped"
        problems += unshipped_imports(job)
        started = start(job, tmp_path)
        if started.returncode != 0:
            problems.append(f"{step['Name']}: does not start: {started.stderr.strip().splitlines()[-1:]}")
    assert problems == []


def test_without_its_pythonpath_a_job_cannot_import_the_schema(built_pipeline, tmp_path):
    """The schema reaches a job only through its path: no fallback finds it elsewhere."""
    built = built_pipeline("training", STAGE)
    step = next(s for s in job_steps(built.definition) if s["Type"] == "Training")
    job = lay_out(built, step, tmp_path / "job")
    job.env.pop("PYTHONPATH")
    assert unshipped_imports(job) == [f"{step['Name']}: train.py imports 'features', which the job is not given"]
    started = start(job, tmp_path)
    assert started.returncode != 0 and "No module named 'features'" in started.stderr
