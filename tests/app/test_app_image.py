"""The app's image, read as text (no Docker engine here): multi-stage, digest-pinned, non-root, a healthcheck;
and its requirements file, which must be the hash-locked export of uv.lock's `app` group."""

from __future__ import annotations

import re
import subprocess
import tomllib

from conftest import ROOT

from gitops.release.render import requirement_entries

DOCKERFILE = ROOT / "app" / "Dockerfile"
REQUIREMENTS = ROOT / "app" / "requirements.txt"
DIGEST_PINNED = re.compile(r"^[a-z0-9./_-]+(:[\w.-]+)?@sha256:[0-9a-f]{64}$")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    lines = [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def image_problems(text: str) -> list[str]:
    """What the image promises and this Dockerfile breaks (empty when it keeps them all)."""
    steps = instructions(text)
    problems = []
    froms = [args.split()[0] for op, args in steps if op == "FROM"]
    if len(froms) < 2:
        problems.append("not multi-stage")
    stage_names = {args.split()[-1] for op, args in steps if op == "FROM" and " AS " in args.upper()}
    problems += [
        f"FROM {image} is not pinned by digest"
        for image in froms
        if image not in stage_names and not DIGEST_PINNED.match(image)
    ]
    last_stage = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    users = [args for op, args in steps[last_stage:] if op == "USER"]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problems.append("the final stage runs as root")
    if not any(op == "HEALTHCHECK" and "CMD" in args for op, args in steps[last_stage:]):
        problems.append("no HEALTHCHECK in the final stage")
    if not any(op == "RUN" and "--require-hashes" in args for op, args in steps):
        problems.append("dependencies not installed with --require-hashes")
    return problems


def test_the_dockerfile_keeps_its_promises():
    assert image_problems(DOCKERFILE.read_text()) == []
    steps = instructions(DOCKERFILE.read_text())
    assert any(op == "HEALTHCHECK" and "prediction_service.liveness" in args for op, args in steps)
    assert ("CMD", '["serve"]') in steps and ("ENTRYPOINT", '["python", "-m", "prediction_service"]') in steps
    assert (ROOT / "app" / "prediction_service" / "liveness.py").is_file()


def test_the_checks_catch_a_tag_a_root_user_and_a_missing_healthcheck():
    bad = 'FROM python:3.11-slim AS build\nRUN pip install -r r.txt\nFROM python:3.11-slim\nCMD ["serve"]\n'
    assert image_problems(bad) == [
        "FROM python:3.11-slim is not pinned by digest",
        "FROM python:3.11-slim is not pinned by digest",
        "the final stage runs as root",
        "no HEALTHCHECK in the final stage",
        "dependencies not installed with --require-hashes",
    ]
    # A stage built FROM an earlier stage needs no digest; its own USER and HEALTHCHECK still count.
    from_a_stage = DOCKERFILE.read_text() + "\nFROM build AS again\nUSER 0\n"
    assert image_problems(from_a_stage) == ["the final stage runs as root", "no HEALTHCHECK in the final stage"]


def _export() -> str:
    script = ROOT / "scripts" / "export-app-requirements"
    text = script.read_text()
    cmd = re.search(r"^\s*(uv export .*)$", text, re.MULTILINE)
    assert cmd, "scripts/export-app-requirements runs uv export"
    done = subprocess.run(cmd.group(1).split(), cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def test_the_requirements_file_is_the_locked_app_group_with_hashes():
    committed = REQUIREMENTS.read_text()
    body = "".join(line for line in committed.splitlines(keepends=True) if not line.startswith("#"))
    assert body == _export(), "app/requirements.txt is stale: run scripts/export-app-requirements"
    locked = {p["name"]: p["version"] for p in tomllib.loads((ROOT / "uv.lock").read_text())["package"]}
    entries = requirement_entries(committed)
    group = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]["app"]
    direct = {re.split(r"[\[=]", req, maxsplit=1)[0] for req in group}
    assert direct <= set(entries)
    for name, entry in entries.items():
        version = re.match(r"[\w.-]+==([^ ;\\]+)", entry)
        assert version and locked[name] == version.group(1), name
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", entry), name
    assert not set(entries) & {"pytest", "ruff", "sagemaker", "aws-cdk-lib", "moto", "sagemaker-gitops", "typer"}


def test_every_requirement_has_a_wheel_for_the_image():
    """The image installs with --only-binary=:all:, on linux x86_64 or arm64 with CPython 3.11."""
    names = set(requirement_entries(REQUIREMENTS.read_text()))
    packages = [p for p in tomllib.loads((ROOT / "uv.lock").read_text())["package"] if p["name"] in names]
    assert {p["name"] for p in packages} == names
    for arch in ("x86_64", "aarch64"):
        for package in packages:
            wheels = [w["url"].rsplit("/", 1)[-1] for w in package.get("wheels", [])]
            fits = [
                w
                for w in wheels
                if w.endswith("-none-any.whl")
                or (("cp311" in w or "abi3" in w) and "manylinux" in w and w.endswith(f"_{arch}.whl"))
            ]
            assert fits, f"{package['name']} has no wheel for linux {arch} (the image builds with --only-binary)"
