"""Bad input through the real CLI: one short first line naming the file or flag, non-zero exit, nothing written.

Each row edits one file of a checkout copy (or passes one bad argument), runs `python -m gitops`,
and checks what a user sees and what is left: the release directory, byte for byte, and no
half-written temporary directory or report beside it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from release_builder import build_release

from gitops.config import load_stages
from gitops.release.manifest import StageSummary, stage_config_path
from gitops.release.pipelines import canonical_json

LIMIT = 200
# Any AWS call that slipped through would go nowhere, fast (no credentials, a closed port):
# arguments must be refused before it.
OFFLINE = {
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    "GITOPS_TARGET": "aws",
    "COLUMNS": "80",  # a narrow terminal must not wrap the error line
}


def tree(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def top_level(root: Path) -> list[str]:
    """What the checkout holds at its top, but the render part cache (.gitops/: a cache, not an output)."""
    return sorted(p.name for p in root.iterdir() if p.name != ".gitops")


@pytest.fixture(scope="module")
def checkout(tmp_path_factory, checkout_copy) -> Path:
    """A checkout copy holding a small, valid release (what a previous render left)."""
    root = checkout_copy(tmp_path_factory.mktemp("bad-input"), with_render_cache=False)
    stages = load_stages(root)
    files = {stage_config_path(n): canonical_json(c.model_dump(mode="json")) for n, c in stages.items()}
    summaries = {
        n: StageSummary(account=c.account, region=c.region, promote_to=c.promote_to, stacks={}, pipelines={})
        for n, c in stages.items()
    }
    build_release(root / "release", files, summaries, engine_wheel="assets/none/sagemaker_gitops.whl", scanned=False)
    return root


@pytest.fixture
def edit(checkout: Path):
    """edit(rel, change): change a file of the checkout (text -> text); every edit is undone afterwards."""
    saved: dict[Path, bytes] = {}

    def change(rel: str, how: Callable[[str], str]) -> None:
        path = checkout / rel
        saved.setdefault(path, path.read_bytes())
        path.write_text(how(path.read_text(encoding="utf-8")), encoding="utf-8")

    yield change
    for path, data in saved.items():
        path.write_bytes(data)


def _replace(old: str, new: str) -> Callable[[str], str]:
    def how(text: str) -> str:
        assert old in text, f"{old!r} not in the file"
        return text.replace(old, new, 1)

    return how


def _append(extra: str) -> Callable[[str], str]:
    return lambda text: text + extra


def run_gitops(checkout: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GITOPS_"))} | OFFLINE
    return subprocess.run(
        [sys.executable, "-m", "gitops", *args], cwd=checkout, capture_output=True, text=True, env=env, timeout=600
    )


LONG_FIELD = "x" * 400
ROOT = Path(__file__).resolve().parents[2]


def repeated_key(rel: str, extra: str, key: str, args: list[str]) -> tuple:
    """A row appending `extra` (which repeats `key`) to rel: the error names rel and the line it lands on."""
    line = len(((ROOT / rel).read_text(encoding="utf-8") + extra).splitlines())
    return {rel: _append(extra)}, args, f"{rel}: line {line}: duplicate key '{key}'"


ROWS = [
    pytest.param(
        *repeated_key("infra/config/dev.yaml", "region: us-east-1\n", "region", ["render"]),
        id="stage-config-repeated-key",
    ),
    pytest.param(
        {"infra/config/dev.yaml": _replace("region: eu-west-1", "region: eu-westt-1")},
        ["render"],
        "infra/config/dev.yaml: field 'region': not an AWS region botocore knows; did you mean 'eu-west-1'?",
        id="stage-config-region-typo",
    ),
    pytest.param(
        {"infra/config/prod.yaml": _append(f"{LONG_FIELD}: 1\n")},
        ["render"],
        f"infra/config/prod.yaml: unknown field '{LONG_FIELD[:50]}",
        id="stage-config-long-message",
    ),
    pytest.param(
        {"buildspecs/deploy.yml": _replace("gitops deploy --stage", "gitops deplyo --stage")},
        ["render"],
        "`gitops deplyo`: no such verb (did you mean 'deploy'?)",
        id="buildspec-misspelt-verb",
    ),
    pytest.param(
        *repeated_key("buildspecs/verify.yml", "\nversion: 0.2\n", "version", ["render"]), id="buildspec-repeated-key"
    ),
    pytest.param(
        {"buildspecs/promote.yml": _replace("version: 0.2", "version: 0.1")},
        ["render"],
        "buildspecs/promote.yml: version: only version 0.2 is supported",
        id="buildspec-wrong-version",
    ),
    pytest.param(
        *repeated_key("policy.yaml", "\nversion: 1\n", "version", ["scan", "--release", "release"]),
        id="policy-repeated-key",
    ),
    pytest.param({}, ["render", "--no-such-flag"], "render: No such option: --no-such-flag", id="bad-flag"),
    pytest.param(
        {},
        ["promote", "--from", "dev", "--to", "nowhere"],
        "--to nowhere: no such stage (have dev, prod)",
        id="promote",
    ),
    pytest.param({}, ["verify", "--stage", "qa"], "--stage qa: no such stage (have dev, prod)", id="verify-stage"),
    pytest.param({}, ["deploy", "--stage", "qa"], "--stage qa: no such stage (have dev, prod)", id="deploy-stage"),
    pytest.param({}, ["report", "--stage", "qa"], "--stage qa: no such stage (have dev, prod)", id="report-stage"),
    pytest.param(
        {},
        ["report", "--upload", "--against", "release"],
        "--upload needs exactly one --stage (its bucket) and a target to read, not --against",
        id="report-upload-without-stage",
    ),
    pytest.param(
        {},
        ["verify", "--stage", "qa", "--release", "no-release-here"],
        "--stage qa: no such stage (have dev, prod)",
        id="verify-stage-before-any-release",
    ),
    pytest.param(
        {}, ["diff", "--stage", "qa", "--json"], "--stage qa: no such stage (have dev, prod)", id="diff-stage-json"
    ),
    pytest.param(
        {"pipeline_defs/training/pipeline.py": _append(f"\nraise RuntimeError('{'y' * 1000}')\n")},
        ["render"],
        "pipeline_defs/training/pipeline.py: import failed: RuntimeError: yyy",
        id="pipeline-module-long-error",
        marks=pytest.mark.slow,  # the synthesis runs beside the pipeline builds, and render waits for it
    ),
]


@pytest.mark.parametrize(("edits", "args", "expected"), ROWS)
def test_bad_input_is_one_short_line_and_changes_nothing(checkout, edit, edits, args, expected):
    for rel, how in edits.items():
        edit(rel, how)
    before = tree(checkout / "release")
    siblings = top_level(checkout)

    done = run_gitops(checkout, *args)

    assert done.returncode != 0
    # Progress lines may come first (render says what it builds); the error report is what follows.
    start = re.search(r"^error: ", done.stderr, re.MULTILINE)
    report = done.stderr[start.start() :] if start else done.stderr
    lines = report.splitlines()
    assert lines, done.stdout
    first = lines[0]
    assert first.startswith("error: "), done.stderr
    assert len(first) < LIMIT, first
    assert expected in first, done.stderr
    assert "Traceback" not in done.stderr
    if len(lines) > 1:
        assert lines[1].startswith(("hint: ", "detail:")), done.stderr
    if args[0] != "render":
        assert "gitops render" not in done.stderr, "the hint points at the wrong verb"
    assert tree(checkout / "release") == before
    assert top_level(checkout) == siblings  # no .release.tmp-*, no reports/
    if "--json" in args:
        assert json.loads(done.stdout)["error"] == first.removeprefix("error: ")


def test_a_long_message_keeps_its_start_on_the_line_and_the_whole_in_the_detail(checkout, edit):
    edit("infra/config/prod.yaml", _append(f"{LONG_FIELD}: 1\n"))
    done = run_gitops(checkout, "render")
    lines = done.stderr.splitlines()
    assert done.returncode == 1
    assert lines[0].endswith("...") and len(lines[0]) <= LIMIT
    assert lines[1].startswith("hint: ")
    assert lines[2] == "detail:"
    assert f"unknown field '{LONG_FIELD}'" in lines[3]  # nothing lost


def test_a_foreign_directory_given_as_out_is_kept_intact(checkout):
    # Found: `render --out DIR` deleted background.js and icons/ from a directory that held another manifest.json.
    ext = checkout / "extension"
    (ext / "icons").mkdir(parents=True)
    (ext / "manifest.json").write_text(json.dumps({"manifest_version": 3, "name": "An extension", "version": "1.0"}))
    (ext / "background.js").write_text("chrome.runtime.onInstalled.addListener(() => {});\n")
    (ext / "icons" / "icon-16.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    before = tree(ext)

    done = run_gitops(checkout, "render", "--out", "extension")

    assert done.returncode == 1
    first = done.stderr.splitlines()[0]
    assert first == (
        "error: --out extension: not a release (its manifest.json is not a gitops release manifest);"
        " refusing to replace it"
    )
    assert tree(ext) == before and (ext / "icons").is_dir()
    assert not [p for p in checkout.iterdir() if p.name.startswith(".extension.")]
