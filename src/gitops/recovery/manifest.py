"""A backup set's manifest: written last, read first; every object's sha256 checked before anything is restored.

A backup set is a directory (objects/ and MANIFEST.json). The manifest is written only after every
object is on disk and synced, so a set without one is an interrupted backup and is never used.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from gitops.errors import GitopsError
from gitops.files import atomic_write, sync_directory

MANIFEST_NAME = "MANIFEST.json"
OBJECTS_DIR = "objects"
FORMAT = 1
_CHUNK = 1 << 20


class BackupError(GitopsError):
    hint = "take a new backup with `gitops backup --stage <stage>`, or pass another --from"


class BackupIncomplete(BackupError):
    """A backup set without a readable manifest: interrupted, never complete."""


class BackupTampered(BackupError):
    """An object of a backup set does not hash as its manifest says."""

    hint = "this backup cannot be trusted: restore from another backup set (nothing was changed)"


class ManifestEntry(BaseModel):
    """One object of the set: what it is, where it came from, and its bytes' digest."""

    model_config = ConfigDict(extra="forbid")

    kind: str  # the inventory kind that wrote it (gitops.recovery.inventory)
    name: str  # what the object is, for people: "model package v2", "s3://bucket/key"
    path: str  # relative to the set's objects/ directory
    sha256: str
    size: int
    source_arn: str
    detail: dict[str, Any] = {}


class KindSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: str  # backed-up | skipped
    reason: str = ""
    count: int = 0


class BackupManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: int = FORMAT
    stage: str
    account: str
    region: str
    target: str
    release_id: str  # the release the stage's env repository held when the backup was taken
    started_at: str
    finished_at: str
    seconds: float
    kinds: dict[str, KindSummary]
    entries: list[ManifestEntry]

    def entries_of(self, kind: str) -> list[ManifestEntry]:
        return [e for e in self.entries if e.kind == kind]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def entry_for(objects: Path, path: Path, *, kind: str, name: str, source_arn: str, **detail: Any) -> ManifestEntry:
    """The manifest entry of a file a kind wrote under objects/ (hashed from its bytes on disk)."""
    return ManifestEntry(
        kind=kind,
        name=name,
        path=path.relative_to(objects).as_posix(),
        sha256=file_sha256(path),
        size=path.stat().st_size,
        source_arn=source_arn,
        detail=detail,
    )


def write_manifest(backup_dir: Path, manifest: BackupManifest) -> Path:
    """Write the manifest, last: every object's directory is synced first, then one atomic rename."""
    for directory in sorted({p.parent for p in (backup_dir / OBJECTS_DIR).rglob("*")} | {backup_dir}):
        if directory.is_dir():
            sync_directory(directory)
    path = backup_dir / MANIFEST_NAME
    atomic_write(path, json.dumps(manifest.model_dump(mode="json"), indent=2, sort_keys=True) + "\n")
    return path


def read_manifest(backup_dir: Path) -> BackupManifest:
    """The set's manifest, or BackupIncomplete: a set without a whole, valid manifest is not a backup."""
    path = backup_dir / MANIFEST_NAME
    if not backup_dir.is_dir():
        raise BackupError(f"{backup_dir}: no such backup set")
    if not path.is_file():
        raise BackupIncomplete(
            f"{backup_dir}: no {MANIFEST_NAME}: this backup was interrupted and is not a backup; nothing was restored"
        )
    try:
        manifest = BackupManifest.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, ValidationError) as exc:
        first = str(exc).splitlines()[0][:100]
        raise BackupIncomplete(f"{path}: not a readable backup manifest ({first}); nothing was restored") from exc
    if manifest.format != FORMAT:
        raise BackupError(f"{path}: manifest format {manifest.format}, this engine reads {FORMAT}")
    return manifest


def check_objects(backup_dir: Path, manifest: BackupManifest) -> int:
    """Hash every object the manifest lists; the first one missing or changed is refused by name. Returns bytes read."""
    objects = (backup_dir / OBJECTS_DIR).resolve()
    total = 0
    for entry in manifest.entries:
        path = (objects / entry.path).resolve()
        if not path.is_relative_to(objects):
            raise BackupTampered(f"{backup_dir}: manifest entry '{entry.name}' points outside the set ({entry.path})")
        if not path.is_file():
            raise BackupTampered(f"refusing backup {backup_dir.name}: {entry.kind} object {entry.name} is missing")
        found = file_sha256(path)
        if found != entry.sha256 or path.stat().st_size != entry.size:
            raise BackupTampered(
                f"refusing backup {backup_dir.name}: {entry.kind} object {entry.name} has sha256 {found[:12]},"
                f" its manifest says {entry.sha256[:12]}"
            )
        total += entry.size
    return total


def complete_backups(destination: Path, stage: str) -> list[Path]:
    """The complete backup sets of a stage under destination, oldest first (interrupted ones left out)."""
    found = []
    for candidate in sorted(destination.glob(f"{stage}-*")):
        try:
            if read_manifest(candidate).stage == stage:
                found.append(candidate)
        except BackupError:
            continue
    return found
