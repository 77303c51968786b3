"""The release: its manifest, its content digest, and loading one back with full verification."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gitops.config import StageConfig
from gitops.errors import ReleaseError
from gitops.release.assets import sha256_bytes

MANIFEST = "manifest.json"
# 2: the release id covers the manifest itself; no scan record (scans attest outside the release).
SCHEMA_VERSION: Literal[2] = 2
# The reviewed policy travels with the release, covered by its id: a stage scans with it, never a local copy.
RELEASE_POLICY = "policy.yaml"
# A release is never edited: what mends a changed one depends on where it lives.
TAMPER_HINT = (
    "a rendered release: re-run `gitops render`; an env repo's release/: restore its last published commit"
    " (`git revert` the edit, or `gitops rollback`); never edit a release by hand"
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StackSummary(_Model):
    stack_name: str
    resources: int
    resource_types: dict[str, int]


class PipelineSummary(_Model):
    pipeline_name: str
    steps: list[str]
    parameters: list[str]


class StageSummary(_Model):
    account: str
    region: str
    promote_to: str | None
    stacks: dict[str, StackSummary]
    pipelines: dict[str, PipelineSummary]


class ReleaseManifest(_Model):
    schema_version: Literal[2] = SCHEMA_VERSION
    release_id: str
    source_commit: str | None
    tool_versions: dict[str, str]
    engine_wheel: str
    # Hash-locked requirement files the release carries, by role (engine, scan, checkov): release paths.
    requirements: dict[str, str] = Field(default_factory=dict)
    stages: dict[str, StageSummary]
    files: dict[str, str]

    @property
    def short_id(self) -> str:
        return self.release_id[:12]


def manifest_body_digest(manifest: ReleaseManifest) -> str:
    """sha256 of the canonical manifest without its id: every field the id must also cover."""
    body = manifest.model_dump(mode="json", exclude={"release_id"})
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def compute_release_id(manifest: ReleaseManifest) -> str:
    """sha256 over the sorted (path, sha256) list of every file, then the digest of the rest of the manifest.

    So no field can change without changing the id: not a file, not source_commit, a stage summary
    or a tool version (docs/design.md §3).
    """
    digest = hashlib.sha256()
    for path in sorted(manifest.files):
        digest.update(f"{path}\0{manifest.files[path]}\n".encode())
    digest.update(f"{MANIFEST}\0{manifest_body_digest(manifest)}\n".encode())
    return digest.hexdigest()


def seal_manifest(
    files: dict[str, bytes],
    *,
    stages: dict[str, StageSummary],
    engine_wheel: str,
    source_commit: str | None = None,
    tool_versions: dict[str, str] | None = None,
    requirements: dict[str, str] | None = None,
) -> ReleaseManifest:
    """The manifest of a release made of `files` (path -> bytes): every digest, and the id over them all.

    The one place a manifest is made (render, and the tests' release builders).
    """
    hashes = {rel: sha256_bytes(data) for rel, data in sorted(files.items())}
    unsealed = ReleaseManifest(
        release_id="",
        source_commit=source_commit,
        tool_versions=tool_versions or {},
        engine_wheel=engine_wheel,
        requirements=requirements or {},
        stages=stages,
        files=hashes,
    )
    return unsealed.model_copy(update={"release_id": compute_release_id(unsealed)})


def manifest_bytes(manifest: ReleaseManifest) -> bytes:
    data = manifest.model_dump(mode="json", exclude_none=False)
    return (json.dumps(data, sort_keys=True, indent=2) + "\n").encode()


def _walk(release_dir: Path) -> dict[str, Path]:
    found = {}
    for dirpath, _dirnames, filenames in os.walk(release_dir):
        for name in filenames:
            path = Path(dirpath) / name
            found[path.relative_to(release_dir).as_posix()] = path
    return found


def read_manifest(release_dir: Path) -> ReleaseManifest:
    path = release_dir / MANIFEST
    try:
        return ReleaseManifest.model_validate_json(path.read_bytes())
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise ReleaseError(f"{release_dir}: not a release (no {MANIFEST})") from exc
    except OSError as exc:
        raise ReleaseError(f"{path}: cannot be read: {exc.strerror}") from exc
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise ReleaseError(f"{path}: invalid manifest: field '{field}': {err['msg']}") from exc


def load_release(release_dir: Path) -> ReleaseManifest:
    """Read a release and prove it is whole: every file listed, hashed as listed, nothing extra."""
    manifest = read_manifest(release_dir)
    on_disk = _walk(release_dir)
    on_disk.pop(MANIFEST, None)
    missing = sorted(set(manifest.files) - set(on_disk))
    extra = sorted(set(on_disk) - set(manifest.files))
    if missing:
        raise ReleaseError(f"{release_dir}: file listed in the manifest is missing: {missing[0]}", hint=TAMPER_HINT)
    if extra:
        raise ReleaseError(f"{release_dir}: file not listed in the manifest: {extra[0]}", hint=TAMPER_HINT)
    for rel, expected in manifest.files.items():
        if sha256_bytes(on_disk[rel].read_bytes()) != expected:
            raise ReleaseError(f"{release_dir / rel}: content differs from the manifest's sha256", hint=TAMPER_HINT)
    if compute_release_id(manifest) != manifest.release_id:
        raise ReleaseError(
            f"{release_dir / MANIFEST}: release_id {manifest.short_id} does not match the manifest's content"
            " (a field was edited after render)",
            hint=TAMPER_HINT,
        )
    return manifest


def check_stage_summary(release_dir: Path, manifest: ReleaseManifest, stage: str) -> None:
    """A stage's summary says what deploy acts on; it must agree with the hashed files.

    The release id covers the summary too, so this catches a renderer that wrote a wrong one, not
    an edit: every template and pipeline file listed, stack and pipeline names and the account as
    the config and asset files say.
    """
    where = release_dir / MANIFEST
    summary = manifest.stages.get(stage)
    if summary is None:
        raise ReleaseError(f"{where}: the release has no stage '{stage}'")
    base = f"stages/{stage}/"
    templates = {
        r[len(base + "templates/") :].removesuffix(".template.json")
        for r in manifest.files
        if r.startswith(base + "templates/") and r.endswith(".template.json")
    }
    pipelines = {
        r[len(base + "pipelines/") :].removesuffix(".json") for r in manifest.files if r.startswith(base + "pipelines/")
    }
    if templates != set(summary.stacks) or pipelines != set(summary.pipelines):
        raise ReleaseError(f"{where}: stage '{stage}': the summary's stacks or pipelines differ from its files")
    if stage_config_path(stage) in manifest.files:
        cfg = load_stage_config_from_release(release_dir, stage)
        if (cfg.account, cfg.region) != (summary.account, summary.region):
            raise ReleaseError(f"{where}: stage '{stage}': account/region differ from {stage_config_path(stage)}")
        for name, pipe in summary.pipelines.items():
            if pipe.pipeline_name != cfg.pipeline_name(name):
                raise ReleaseError(f"{where}: stage '{stage}': pipeline '{name}' is misnamed in the summary")
    for name, stack in summary.stacks.items():
        assets = f"{base}templates/{name}.assets.json"
        if assets in manifest.files:
            declared = json.loads((release_dir / assets).read_bytes()).get("stack_name")
            if declared != stack.stack_name:
                raise ReleaseError(f"{where}: stage '{stage}': stack '{name}' is misnamed in the summary")


def stage_config_path(stage: str) -> str:
    return f"stages/{stage}/config.json"


def load_stage_config_from_release(release_dir: Path, stage: str) -> StageConfig:
    """The stage's validated settings as rendered into the release (deploy never reads the source)."""
    path = release_dir / stage_config_path(stage)
    try:
        return StageConfig.model_validate_json(path.read_bytes(), strict=False)
    except FileNotFoundError as exc:
        raise ReleaseError(f"{release_dir}: the release has no stage '{stage}'") from exc
    except ValidationError as exc:
        raise ReleaseError(f"{path}: invalid stage settings: {exc.errors()[0]['msg']}") from exc


def write_release_dir(out: Path, files: dict[str, bytes], manifest: ReleaseManifest) -> None:
    """Write a complete release next to out, then swap it into place: never a partial release."""
    out = out.absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for rel, data in sorted(files.items()):
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        (tmp / MANIFEST).write_bytes(manifest_bytes(manifest))
        load_release(tmp)
        if out.exists():
            os.rename(out, old)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not out.exists():
            os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)
