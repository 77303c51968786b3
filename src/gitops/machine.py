"""This machine's private state: its state directory, its signing key, and scratch work directories.

The state directory is outside any checkout (no repository can carry a key in). The key signs what
only this machine's engine may vouch for: scan attestations, and on the embedded target the
approvals and verifications its pipeline runner records. A record edited or written by hand fails
the MAC. The key's authority is this user account's: whoever can read a 0600 file of this user can
sign (docs/design.md §7, rule 6).

Scratch directories (clones of env repositories, held releases) live under one work directory,
named after the process that made them: a run that is killed leaves its directory behind, and the
next run removes every directory whose process is gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from gitops.errors import GitopsError

STATE_DIR_ENV = "GITOPS_STATE_DIR"
KEY_FILE = "attestation.key"
WORK_DIR = "work"


class MachineKeyError(GitopsError):
    """The machine's key is unusable."""

    hint = "delete the named file: a new key is created on next use (what the old one signed then counts for nothing)"


def state_dir() -> Path:
    """This machine's (this user's) state: outside any checkout, so no repository can carry a key in."""
    override = os.environ.get(STATE_DIR_ENV)
    if override:
        return Path(override).absolute()
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "gitops"


def machine_key(create: bool) -> bytes | None:
    """The 32-byte key, created 0600 on first use when `create`; None when absent and not created."""
    path = state_dir() / KEY_FILE
    if not path.exists():
        if not create:
            return None
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(32))
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(FileExistsError):  # another process created it first: use that one
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    info = path.stat()
    if info.st_uid != os.getuid() or info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise MachineKeyError(
            f"{path}: the machine key is readable by other users or not owned by this user (mode"
            f" {stat.S_IMODE(info.st_mode):04o}); a key others can read proves nothing"
        )
    key = path.read_bytes()
    if len(key) != 32:
        raise MachineKeyError(f"{path}: not a machine key ({len(key)} bytes, expected 32)")
    return key


def sign(body: bytes) -> str:
    """HMAC-SHA256 of body under this machine's key (created if need be)."""
    key = machine_key(create=True)
    assert key is not None
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def signed_by_this_machine(body: bytes, mac: str) -> bool:
    """True only when mac is this machine's signature of body (no key yet: nothing was signed here)."""
    key = machine_key(create=False)
    return key is not None and bool(mac) and hmac.compare_digest(mac, hmac.new(key, body, hashlib.sha256).hexdigest())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_work_dirs() -> int:
    """Remove the scratch directories of processes that no longer run; returns how many."""
    base = state_dir() / WORK_DIR
    removed = 0
    for entry in base.iterdir() if base.is_dir() else []:
        pid = entry.name.split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    return removed


@contextlib.contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A fresh directory under the work directory, removed on exit; a killed run's is removed next time."""
    base = state_dir() / WORK_DIR
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    clean_work_dirs()
    path = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-{prefix}-", dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
