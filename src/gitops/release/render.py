"""`gitops render`: the source tree in, one deterministic release directory out (docs/design.md §3)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from importlib import metadata
from pathlib import Path

from gitops.config import StageConfig, load_stages
from gitops.errors import GitopsError, ReleaseError
from gitops.model.pin import RELEASE_MODEL, release_model_bytes, sample_request
from gitops.model.pin import load_pin as load_model_pin
from gitops.progress import Progress
from gitops.release.app_image import RELEASE_APP, release_app_bytes
from gitops.release.app_image import load_pin as load_app_pin
from gitops.release.assets import AssetRegistry, sha256_bytes
from gitops.release.ci_calls import check_ci_calls
from gitops.release.manifest import (
    MANIFEST,
    RELEASE_POLICY,
    PipelineSummary,
    ReleaseManifest,
    StackSummary,
    StageSummary,
    load_release,
    read_manifest,
    seal_manifest,
    stage_config_path,
    write_release_dir,
)
from gitops.release.pipelines import canonical_json
from gitops.release.project_import import use_checkout

CACHE_DIR = Path(".gitops") / "cache"
# Package versions that shape the release bytes; recorded in the manifest and in every cache key.
TOOLS = ("sagemaker-gitops", "aws-cdk-lib", "constructs", "cdk-nag", "sagemaker", "hatchling")
_SKIP = {"__pycache__", ".pytest_cache", ".ruff_cache", "cdk.out", "node_modules", ".venv"}


def tool_versions() -> dict[str, str]:
    return {name: metadata.version(name) for name in TOOLS}


def _input_files(root: Path, paths: Iterable[str]) -> list[Path]:
    files: list[Path] = []
    for rel in paths:
        path = root / rel
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames[:] = sorted(d for d in dirnames if d not in _SKIP)
                files.extend(Path(dirpath) / f for f in filenames if not f.endswith(".pyc"))
    return sorted(files)


def inputs_digest(root: Path, paths: Iterable[str], extra: str = "") -> str:
    """sha256 over (relative path, content) of every input file, plus tool versions."""
    digest = hashlib.sha256(json.dumps(tool_versions(), sort_keys=True).encode() + extra.encode())
    for path in _input_files(root, paths):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(sha256_bytes(path.read_bytes()).encode() + b"\n")
    return digest.hexdigest()


@dataclass
class Part:
    """One cached piece of the release: a set of (release path -> bytes) plus its summary."""

    files: dict[str, bytes]
    summary: dict
    cached: bool = False


class PartCache:
    """Cache of rendered parts keyed by their input digest, under .gitops/cache/ (never committed)."""

    def __init__(self, root: Path, enabled: bool) -> None:
        self.dir = root / CACHE_DIR
        self.enabled = enabled

    def get(self, kind: str, key: str) -> Part | None:
        entry = self.dir / kind / key
        if not self.enabled or not (entry / "summary.json").exists():
            return None
        summary = json.loads((entry / "summary.json").read_text())
        files = {rel: (entry / "files" / rel).read_bytes() for rel in summary.pop("_files")}
        return Part(files, summary, cached=True)

    def put(self, kind: str, key: str, part: Part) -> None:
        if not self.enabled:
            return
        final = self.dir / kind / key
        tmp = Path(tempfile.mkdtemp(prefix=f".{key[:8]}-", dir=self._ensure(self.dir / kind)))
        for rel, data in part.files.items():
            (tmp / "files" / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / "files" / rel).write_bytes(data)
        (tmp / "summary.json").write_text(json.dumps({**part.summary, "_files": sorted(part.files)}))
        # Keep one entry per kind: the cache is for the next render, not an archive.
        for old in (self.dir / kind).iterdir():
            if old != tmp:
                shutil.rmtree(old, ignore_errors=True)
        os.rename(tmp, final)

    @staticmethod
    def _ensure(path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        return path


# What each part is a function of (repository-relative paths).
ENGINE_INPUTS = ("src/gitops", "pyproject.toml", "README.md")
CHECKOV_LOCK = "scripts/checkov-requirements.txt"
REQUIREMENTS_INPUTS = ("uv.lock", "pyproject.toml", CHECKOV_LOCK)
# What a stage's `gitops scan` needs beyond the engine's core (the `render` extra's other packages,
# CDK and the SageMaker SDK, are pruned: the scan reads what they produced from the release).
SCAN_PACKAGES = ("cfn-lint",)
ENGINE_REQUIREMENTS = "engine-requirements.txt"
SCAN_REQUIREMENTS = "scan-requirements.txt"
CHECKOV_REQUIREMENTS = "checkov-requirements.txt"
# infra imports the engine (names, the buildspec model, the execution-id variable) and renders
# cdk-nag's report with it: the whole engine is an input, so a cached template never disagrees with it.
INFRA_INPUTS = (
    "infra",
    "cdk.json",
    "buildspecs",
    "seed_repo",
    "prod_repo",
    "pipeline_defs/features.py",
    "src/gitops",
)
# Verify sends the first records of the sample data to the served model.
MODEL_SAMPLE_CSV = "pipeline_defs/feature_ingestion/sample/customers.csv"
PIPELINE_INPUTS = (
    "pipeline_defs",
    "src/gitops/release/pipelines.py",
    "src/gitops/release/entrypoints.py",
    "src/gitops/release/assets.py",
    "src/gitops/config.py",
)


def _registry_files(registry: AssetRegistry) -> dict[str, bytes]:
    return {path: asset.data for path, asset in registry.assets.items()}


def _render_infra(root: Path, stages: dict[str, StageConfig]) -> Part:
    from gitops.release.synth import synthesize
    from gitops.scan.cdk_nag import nag_report_document, report_path

    registry = AssetRegistry()
    synthesized = synthesize(root, stages, registry)
    files = _registry_files(registry)
    summary: dict = {}
    for stage, stacks in synthesized.items():
        summary[stage] = {}
        for stack in stacks:
            base = f"stages/{stage}/templates/{stack.name}"
            files[f"{base}.template.json"] = canonical_json(stack.template)
            files[f"{base}.assets.json"] = canonical_json(
                {"stack_name": stack.stack_name, "files": stack.assets, "depends_on": stack.depends_on}
            )
            types: dict[str, int] = {}
            for res in stack.template.get("Resources", {}).values():
                types[res["Type"]] = types.get(res["Type"], 0) + 1
            summary[stage][stack.name] = {
                "stack_name": stack.stack_name,
                "resources": sum(types.values()),
                "resource_types": dict(sorted(types.items())),
            }
        # cdk-nag's raw findings on the construct tree: the scan reads them from the release.
        files[report_path(stage)] = canonical_json(nag_report_document({s.name: s.nag for s in stacks}))
    return Part(files, summary)


def _render_pipelines(root: Path, stage: StageConfig, names: list[str]) -> Part:
    from gitops.release.pipelines import build_pipeline, offline_sagemaker

    registry = AssetRegistry()
    files: dict[str, bytes] = {}
    summary: dict = {}
    for name in names:
        # A fresh mock per pipeline: the SDK-upload check must see only this pipeline's uploads.
        with offline_sagemaker(stage.region):
            definition = build_pipeline(root, stage, name, registry)
        files[f"stages/{stage.stage}/pipelines/{name}.json"] = canonical_json(definition)
        summary[name] = {
            "pipeline_name": stage.pipeline_name(name),
            "steps": _step_names(definition.get("Steps", [])),
            "parameters": sorted(p["Name"] for p in definition.get("Parameters", [])),
        }
    files.update(_registry_files(registry))
    return Part(files, summary)


def _step_names(steps: list[dict]) -> list[str]:
    names = []
    for step in steps:
        names.append(step["Name"])
        args = step.get("Arguments") or {}
        if step.get("Type") == "Condition":
            names += _step_names(args.get("IfSteps", [])) + _step_names(args.get("ElseSteps", []))
    return names


def _render_engine_wheel(root: Path) -> Part:
    """A reproducible wheel of this engine; env-repo buildspecs install it from the release."""
    from hatchling.builders.wheel import WheelBuilder

    os.environ.setdefault("SOURCE_DATE_EPOCH", "315532800")
    with tempfile.TemporaryDirectory(prefix="gitops-wheel-") as out:
        try:
            built = next(iter(WheelBuilder(str(root)).build(directory=out, versions=["standard"])))
        except Exception as exc:
            raise GitopsError(f"pyproject.toml: building the engine wheel failed: {exc}") from exc
        data = Path(built).read_bytes()
        name = Path(built).name
    registry = AssetRegistry()
    asset = registry.add(name, data)
    return Part(_registry_files(registry), {"engine_wheel": asset.release_path})


def _uv_export(root: Path, *args: str) -> str:
    """`uv export` of uv.lock as hash-pinned requirements: deterministic (no header, no annotations)."""
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        raise GitopsError("uv.lock: exporting the engine's hash-locked requirements needs `uv` on PATH")
    cmd = [uv, "export", "--frozen", "--no-dev", "--no-emit-project", "--format", "requirements-txt"]
    cmd += ["--no-header", "--no-annotate", *args]
    try:
        done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as exc:
        raise GitopsError(f"uv.lock: `uv export` could not run: {exc}") from exc
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise GitopsError(f"uv.lock: `uv export` failed: {last}")
    return done.stdout


def requirement_entries(text: str) -> dict[str, str]:
    """A requirements file's entries by normalized package name (each entry with its hash lines)."""
    entries: dict[str, str] = {}
    name = None
    for line in text.splitlines(keepends=True):
        if line.strip() == "" or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
            if match is None:
                raise GitopsError(f"uv.lock: unexpected line in `uv export` output: {line.strip()[:80]}")
            name = re.sub(r"[-_.]+", "-", match.group(0)).lower()
            entries[name] = ""
        if name is None:
            raise GitopsError(f"uv.lock: unexpected line in `uv export` output: {line.strip()[:80]}")
        entries[name] += line
    return entries


def _render_requirements(root: Path) -> Part:
    """Hash-locked requirement files from uv.lock, carried next to the engine wheel.

    engine: the core dependencies, exactly as locked (what deploy, verify and promote run on);
    scan: what a stage's scan adds to them (SCAN_PACKAGES and their closure, nothing twice);
    checkov: checkov's own lock, for the environment the scan creates.
    """
    engine = _uv_export(root)
    render_extra = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]["render"]
    names = [re.split(r"[\[=<>!~;\s]", req, maxsplit=1)[0] for req in render_extra]
    pruned = [arg for name in names if name not in SCAN_PACKAGES for arg in ("--prune", name)]
    with_scan = requirement_entries(_uv_export(root, "--extra", "render", *pruned))
    core = requirement_entries(engine)
    missing = [name for name in SCAN_PACKAGES if name not in with_scan]
    if missing:
        raise GitopsError(f"pyproject.toml: the `render` extra does not provide {missing[0]}, which the scan needs")
    scan = "".join(entry for name, entry in sorted(with_scan.items()) if name not in core)
    registry = AssetRegistry()
    paths = {
        "engine": registry.add(ENGINE_REQUIREMENTS, engine.encode()).release_path,
        "scan": registry.add(SCAN_REQUIREMENTS, scan.encode()).release_path,
        "checkov": registry.add(CHECKOV_REQUIREMENTS, (root / CHECKOV_LOCK).read_bytes()).release_path,
    }
    return Part(_registry_files(registry), {"requirements": paths})


def _source_commit(root: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


@dataclass
class RenderResult:
    manifest: ReleaseManifest
    out: Path
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    cached: list[str] = field(default_factory=list)
    unchanged: bool = False


def render_release(root: Path, out: Path, *, use_cache: bool = True, progress: Progress | None = None) -> RenderResult:
    """Render every stage's templates and pipeline definitions into the release directory out."""
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    root = root.resolve()
    check_out_dir(root, out)
    stages = load_stages(root)
    check_ci_calls(root)  # a misspelt verb in a buildspec fails here, not in the stage's build
    app_image = load_app_pin(root, stages)  # an image not pinned by digest fails before any synth
    pin = load_model_pin(root)  # a malformed model pin fails before any synth
    # Before any thread starts: this checkout's infra/ and pipeline_defs/, not ones imported earlier.
    use_checkout(root)
    from gitops.release.pipelines import discover_pipelines

    pipelines = discover_pipelines(root)
    cache = PartCache(root, use_cache)
    timings: dict[str, float] = {}
    cached: list[str] = []

    def part(kind: str, inputs: Iterable[str], build: Callable[[], Part], extra: str = "") -> Part:
        t0 = time.perf_counter()
        key = inputs_digest(root, inputs, extra)
        found = cache.get(kind, key)
        if found is None:
            say(f"{kind}: building")
            found = build()
            cache.put(kind, key, found)
        else:
            cached.append(kind)
        timings[kind] = round(time.perf_counter() - t0, 2)
        say(f"{kind}: {'cached' if found.cached else 'built'} in {timings[kind]:.1f}s")
        return found

    all_configs = "".join(c.model_dump_json() for c in stages.values())
    engine = part("engine-wheel", ENGINE_INPUTS, lambda: _render_engine_wheel(root))
    requirements = part("requirements", REQUIREMENTS_INPUTS, lambda: _render_requirements(root))
    # CDK synthesis runs mostly in its node process (jsii), pipeline builds in Python: overlapping
    # them uses both cores. Neither touches the other's state (CDK makes no AWS calls).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gitops-synth") as pool:
        infra_future = pool.submit(part, "infra", INFRA_INPUTS, lambda: _render_infra(root, stages), all_configs)
        try:
            pipeline_parts = {
                name: part(
                    f"pipelines-{name}",
                    PIPELINE_INPUTS,
                    partial(_render_pipelines, root, cfg, pipelines),
                    cfg.model_dump_json(),
                )
                for name, cfg in stages.items()
            }
        finally:
            infra = infra_future.result()

    files: dict[str, bytes] = {}
    for piece in [engine, requirements, infra, *pipeline_parts.values()]:
        files.update(piece.files)
    for name, cfg in stages.items():
        # The validated settings travel with the release: deploy needs them, not the source tree.
        files[stage_config_path(name)] = canonical_json(cfg.model_dump(mode="json"))
    # The app image by digest travels with the release: every stage runs exactly this (or no service).
    files[RELEASE_APP] = release_app_bytes(app_image)
    # The served model travels with the release: deploy serves exactly this in every stage.
    from pipeline_defs import features  # this checkout's schema (use_checkout above)

    sample = sample_request(root / MODEL_SAMPLE_CSV, features.MODEL_INPUTS)
    files[RELEASE_MODEL] = release_model_bytes(pin, sample)
    if (root / RELEASE_POLICY).is_file():
        # The reviewed policy, byte for byte: every stage's scan uses this copy (covered by the id).
        files[RELEASE_POLICY] = (root / RELEASE_POLICY).read_bytes()
    manifest = seal_manifest(
        files,
        source_commit=_source_commit(root),
        tool_versions=tool_versions(),
        engine_wheel=engine.summary["engine_wheel"],
        requirements=requirements.summary["requirements"],
        stages={
            name: StageSummary(
                account=cfg.account,
                region=cfg.region,
                promote_to=cfg.promote_to,
                stacks={k: StackSummary(**v) for k, v in infra.summary.get(name, {}).items()},
                pipelines={k: PipelineSummary(**v) for k, v in pipeline_parts[name].summary.items()},
            )
            for name, cfg in stages.items()
        },
    )
    unchanged = _same_release(out, manifest)
    if not unchanged:
        check_out_dir(root, out)  # again: the directory may have changed while rendering
        write_release_dir(out, files, manifest)
    return RenderResult(manifest, out, round(time.perf_counter() - started, 2), timings, cached, unchanged)


_OUT_HINT = "give --out a new or empty directory, or one that holds a release (release/)"


def check_out_dir(root: Path, out: Path) -> None:
    """Replacing `out` deletes it: replace only a release, never a directory that holds anything else.

    A release is a directory whose manifest.json parses as ours and which holds no file that
    manifest does not list (listed files may be missing or stale: they are being replaced).
    """
    shown = out
    root, out = root.resolve(), out.resolve()
    if out == root or root.is_relative_to(out):
        raise GitopsError(f"--out {shown}: is the repository (or holds it); refusing to replace it", _OUT_HINT)
    if not out.exists():
        return
    if not out.is_dir():
        raise GitopsError(f"--out {shown}: exists and is not a directory; refusing to replace it", _OUT_HINT)
    if not any(out.iterdir()):
        return
    try:
        manifest = read_manifest(out)
    except ReleaseError as exc:
        reason = f"its {MANIFEST} is not a gitops release manifest" if (out / MANIFEST).exists() else f"no {MANIFEST}"
        raise GitopsError(
            f"--out {shown}: not a release ({reason}); refusing to replace it", _OUT_HINT, str(exc)
        ) from exc
    listed = set(manifest.files) | {MANIFEST}
    listed_dirs = {parent.as_posix() for rel in listed for parent in Path(rel).parents}
    for dirpath, dirnames, filenames in os.walk(out):
        dirnames.sort()
        here = Path(dirpath).relative_to(out)
        entries = [(here / d).as_posix() + "/" for d in dirnames] + [(here / f).as_posix() for f in sorted(filenames)]
        for rel in entries:
            if rel not in listed and rel.rstrip("/") not in listed_dirs:
                raise GitopsError(
                    f"--out {shown}: holds {rel}, which its manifest.json does not list; refusing to replace it",
                    _OUT_HINT,
                )


def _same_release(out: Path, manifest: ReleaseManifest) -> bool:
    """True when out already holds exactly this release (then it is left untouched)."""
    if not out.exists():
        return False
    try:
        current = load_release(out)
    except ReleaseError:
        return False
    return current.release_id == manifest.release_id
