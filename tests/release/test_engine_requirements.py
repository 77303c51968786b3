"""The engine that deploys is the one that was tested: the release carries its dependency set, hash-locked.

render exports uv.lock's core dependencies (and what a stage's scan adds) as requirement files
with hashes, next to the engine wheel; the env-repo buildspecs install from them with
--require-hashes and the wheel with --no-deps, so nothing is resolved from the index at deploy time.
"""

from __future__ import annotations

import glob
import re
import tomllib
from pathlib import Path

import pytest

from gitops.release.buildspec import load_buildspec
from gitops.release.render import SCAN_PACKAGES, _render_requirements, requirement_entries

ROOT = Path(__file__).resolve().parents[2]
LOCKED = {p["name"]: p["version"] for p in tomllib.loads((ROOT / "uv.lock").read_text())["package"]}
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
ENTRY = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>[^ ;\\\n]+)")


def _name(requirement: str) -> str:
    return re.split(r"[\[=<>!~;\s]", requirement, maxsplit=1)[0].lower()


def _export() -> dict[str, str]:
    """render's requirement files by role (engine, scan, checkov), as text."""
    part = _render_requirements(ROOT)
    return {role: part.files[path].decode() for role, path in part.summary["requirements"].items()}


@pytest.fixture(scope="module")
def exported() -> dict[str, dict[str, str]]:
    return {"text": _export(), "again": _export()}


def test_every_entry_is_pinned_to_the_locked_version_with_hashes(exported):
    for role in ("engine", "scan"):
        entries = requirement_entries(exported["text"][role])
        assert entries, role
        for name, entry in entries.items():
            match = ENTRY.match(entry)
            assert match, f"{role}: {entry.splitlines()[0]} is not pinned with =="
            assert LOCKED[name] == match.group("version"), f"{role}: {name} differs from uv.lock"
            assert re.search(r"--hash=sha256:[0-9a-f]{64}", entry), f"{role}: {name} has no hash"


def test_the_engine_file_is_the_core_closure_and_nothing_of_render_or_dev(exported):
    engine = set(requirement_entries(exported["text"]["engine"]))
    assert {_name(d) for d in PYPROJECT["dependencies"]} <= engine
    assert "botocore" in engine and "pydantic-core" in engine  # transitive ones, locked too
    render = {_name(d) for d in PYPROJECT["optional-dependencies"]["render"]}
    assert not engine & (render | {"pytest", "ruff", "sagemaker-gitops"})


def test_the_scan_file_adds_the_scanners_and_repeats_nothing(exported):
    engine = set(requirement_entries(exported["text"]["engine"]))
    scan = set(requirement_entries(exported["text"]["scan"]))
    assert set(SCAN_PACKAGES) <= scan and not scan & engine
    assert not scan & {"aws-cdk-lib", "sagemaker", "moto", "jsii"}  # what render needs, a stage does not


def test_the_export_is_deterministic_and_checkov_keeps_its_own_lock(exported):
    assert exported["text"] == exported["again"]
    assert exported["text"]["checkov"] == (ROOT / "scripts" / "checkov-requirements.txt").read_text()


@pytest.mark.parametrize("name", ["deploy", "verify", "promote"])
def test_env_repo_buildspecs_install_exactly_the_locked_set(name):
    install = load_buildspec(ROOT / "buildspecs" / f"{name}.yml").phases.install.commands
    assert install[0].startswith("pip install --require-hashes -r release/assets/*/engine-requirements.txt")
    assert install[1] == "pip install --no-deps release/assets/*/sagemaker_gitops-*.whl"
    assert ("-r release/assets/*/scan-requirements.txt" in install[0]) == (name != "verify")


@pytest.mark.slow
def test_the_rendered_release_carries_them_next_to_the_wheel_under_its_id(tmp_path):
    from gitops.release.manifest import load_release
    from gitops.release.render import render_release

    release = render_release(ROOT, tmp_path / "release").out
    manifest = load_release(release)
    assert set(manifest.requirements) == {"engine", "scan", "checkov"}
    for role, path in manifest.requirements.items():
        assert path in manifest.files and Path(path).parent.parent == Path(manifest.engine_wheel).parent.parent, role
    # The buildspecs' globs find exactly these files in a real release.
    for role in ("engine", "scan"):
        found = glob.glob(f"assets/*/{role}-requirements.txt", root_dir=release)
        assert found == [manifest.requirements[role]]
    assert glob.glob("assets/*/sagemaker_gitops-*.whl", root_dir=release) == [manifest.engine_wheel]
    assert (release / "policy.yaml").read_bytes() == (ROOT / "policy.yaml").read_bytes()
    assert "policy.yaml" in manifest.files
