"""The embedded target: a loopback moto server and local bare git repositories per stage."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from gitops.config import StageConfig, load_stages
from gitops.errors import GitopsError
from gitops.files import atomic_write
from gitops.promotion.envrepo import commit_identity, git
from gitops.target import DEFAULT_LOCAL_DIR

SERVER_FILE = "moto.json"
SEEDS = {True: "seed_repo", False: "prod_repo"}  # keyed by "does this stage promote onwards"


class EmbeddedError(GitopsError):
    hint = "run `gitops local down` then `gitops local up` to start the embedded target afresh"


@dataclass(frozen=True)
class ServerInfo:
    pid: int
    port: int

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _responds(url: str) -> bool:
    """Any HTTP answer means the server is up (its state dump can answer 500 once it holds a Lambda)."""
    try:
        with urllib.request.urlopen(url + "/moto-api/", timeout=2) as resp:  # noqa: S310 (loopback)
            return resp.status < 600
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def _recorded(local_dir: Path) -> ServerInfo | None:
    try:
        data = json.loads((local_dir / SERVER_FILE).read_text())
        return ServerInfo(int(data["pid"]), int(data["port"]))
    except (OSError, ValueError, KeyError):
        return None


def read_server(local_dir: Path) -> ServerInfo | None:
    """The running server recorded in local_dir, or None if there is none (or it died)."""
    info = _recorded(local_dir)
    return info if info and _alive(info.pid) and _responds(info.endpoint_url) else None


def free_port() -> int:
    """A loopback TCP port nobody listens on now (the moto server, PostgreSQL, the app each take one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(local_dir: Path, timeout: float = 30.0) -> ServerInfo:
    """Start moto on loopback in the background (or return the one already running)."""
    running = read_server(local_dir)
    if running:
        return running
    local_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = open(local_dir / "moto.log", "ab")  # noqa: SIM115 (handed to the child)
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # survives the terminal that ran `gitops local up`
    )
    info = ServerInfo(proc.pid, port)
    deadline = time.monotonic() + timeout
    while not _responds(info.endpoint_url):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise EmbeddedError(f"{local_dir / 'moto.log'}: the moto server did not start on port {port}")
        time.sleep(0.1)
    atomic_write(local_dir / SERVER_FILE, json.dumps({"pid": info.pid, "port": info.port}))
    return info


def stop_server(local_dir: Path) -> bool:
    """Stop the recorded server whether or not it still answers; True if one was running."""
    info = _recorded(local_dir)
    (local_dir / SERVER_FILE).unlink(missing_ok=True)
    if info is None or not _alive(info.pid):
        return False
    os.kill(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if _reap(info.pid) or not _alive(info.pid):
            return True
        time.sleep(0.05)
    os.kill(info.pid, signal.SIGKILL)
    _reap(info.pid)
    return True


def _reap(pid: int) -> bool:
    """Collect our own exited child (else it lingers as a zombie that still 'exists')."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child: its parent reaps it
        return False
    return done == pid


def seed_env_repo(root: Path, local_dir: Path, stage: StageConfig) -> Path:
    """Create the stage's bare env repository from seed_repo/ or prod_repo/ (idempotent)."""
    bare = local_dir / "repos" / f"{stage.stage}.git"
    if (bare / "HEAD").exists():
        return bare
    seed = root / SEEDS[stage.promote_to is not None]
    if not seed.is_dir():
        raise EmbeddedError(f"{seed}: missing; it holds the initial content of the {stage.stage} env repository")
    bare.parent.mkdir(parents=True, exist_ok=True)
    tmp_bare = Path(tempfile.mkdtemp(dir=bare.parent, prefix=f".{stage.stage}."))
    with tempfile.TemporaryDirectory(prefix="gitops-seed-") as work:
        shutil.copytree(seed, work, dirs_exist_ok=True)
        git("init", "-q", "-b", "main", cwd=Path(work))
        git("add", "-A", cwd=Path(work))
        git(*commit_identity(), "commit", "-q", "-m", f"Seed the {stage.stage} environment repository", cwd=Path(work))
        git("clone", "-q", "--bare", work, str(tmp_bare / "repo.git"))
    os.rename(tmp_bare / "repo.git", bare)
    shutil.rmtree(tmp_bare, ignore_errors=True)
    return bare


def bring_up(root: Path) -> tuple[Path, str]:
    """Start the server and seed every stage's env repository; idempotent. (local dir, endpoint URL)"""
    local_dir = (root / DEFAULT_LOCAL_DIR).resolve()
    stages = load_stages(root)
    server = start_server(local_dir)
    for cfg in stages.values():
        seed_env_repo(root, local_dir, cfg)
    return local_dir, server.endpoint_url
