"""Content-addressed assets: files and deterministic archives keyed by their sha256."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

# Fixed metadata so that archives are a pure function of the file contents and names.
_EPOCH = 315532800  # 1980-01-01, the earliest time a zip entry can carry
_SKIP_DIRS = {"__pycache__", ".pytest_cache", ".ipynb_checkpoints"}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tree_files(directory: Path) -> list[Path]:
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        files.extend(Path(dirpath) / f for f in sorted(filenames) if not f.endswith(".pyc"))
    return sorted(files, key=lambda p: p.relative_to(directory).as_posix())


def deterministic_tar_gz(directory: Path) -> bytes:
    """A .tar.gz of directory with sorted entries, zeroed owners and a fixed mtime."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in _tree_files(directory):
            data = path.read_bytes()
            info = tarfile.TarInfo(path.relative_to(directory).as_posix())
            info.size, info.mtime, info.mode = len(data), _EPOCH, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=9, filename="") as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def deterministic_zip(directory: Path) -> bytes:
    """A .zip of directory with sorted entries and a fixed timestamp (CDK directory assets)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in _tree_files(directory):
            info = zipfile.ZipInfo(path.relative_to(directory).as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (0o755 if os.access(path, os.X_OK) else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    return out.getvalue()


@dataclass
class Asset:
    sha256: str
    filename: str
    data: bytes = field(repr=False)

    @property
    def release_path(self) -> str:
        return f"assets/{self.sha256}/{self.filename}"


@dataclass
class AssetRegistry:
    """Collects every asset a render produces; one entry per (content, filename)."""

    assets: dict[str, Asset] = field(default_factory=dict)

    def add(self, filename: str, data: bytes) -> Asset:
        asset = Asset(sha256_bytes(data), filename, data)
        self.assets.setdefault(asset.release_path, asset)
        return asset
