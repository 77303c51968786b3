"""Environment repositories: read the release a stage holds, and move it with one atomic push.

An env repo holds the stage's current release under release/; its git history is the stage's
deploy history. Every update is a single fast-forward push of one commit: a crash at any point
leaves the remote at the old release or the new one, and a lost race is retried against the new
head, converging instead of duplicating (docs/design.md §7.3, §7.4).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from gitops.errors import GitopsError
from gitops.release.manifest import MANIFEST, ReleaseManifest, load_release, read_manifest

RELEASE_DIR = "release"
BRANCH = "main"
TRAILER = "Release-Id"
# Whatever the user's git config says: no global ignores, no line-ending filters on release files.
_VERBATIM = ("-c", "core.excludesFile=/dev/null", "-c", "core.autocrlf=false", "-c", "core.safecrlf=false")


class EnvRepoError(GitopsError):
    hint = "check the environment repository URL and your git credentials (git-remote-codecommit on AWS)"


@dataclass(frozen=True)
class Deployment:
    """One commit of an env repo's history that carries a release."""

    commit: str
    release_id: str | None
    subject: str
    date: str


@dataclass(frozen=True)
class PushResult:
    commit: str
    release_id: str
    changed: bool  # False when the repo already held this release (idempotent re-run)
    attempts: int


# AWS credentials git-remote-codecommit uses for the repository at hand (empty: the caller's own).
_credentials: dict[str, str] = {}


@contextlib.contextmanager
def acting_as(credentials: dict[str, str]) -> Iterator[None]:
    """Run the git calls inside with these AWS credentials (a role in the repository's account)."""
    saved = dict(_credentials)
    _credentials.clear()
    _credentials.update(credentials)
    try:
        yield
    finally:
        _credentials.clear()
        _credentials.update(saved)


def git(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", **_credentials}
    try:
        result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env)
    except FileNotFoundError as exc:
        raise EnvRepoError("git is not installed (or not on PATH): env repositories are git repositories") from exc
    if check and result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise EnvRepoError(f"git {args[0]} failed: {last}")
    return result


def commit_identity() -> list[str]:
    """git -c options naming the engine as committer (env repositories record who moved them in trailers)."""
    name = os.environ.get("GITOPS_GIT_AUTHOR", "gitops")
    return ["-c", f"user.name={name}", "-c", "user.email=gitops@localhost", "-c", "commit.gpgsign=false"]


def clone(url: str, into: Path, depth: int | None = 1) -> Path:
    # Checked out byte for byte, and kept so for later commits (`--config` persists in the clone).
    args = [
        *_VERBATIM,
        "clone",
        "-q",
        "--branch",
        BRANCH,
        "--single-branch",
        "--no-tags",
        "--config",
        "core.autocrlf=false",
        "--config",
        "core.excludesFile=/dev/null",
    ]
    if depth:
        args += ["--depth", str(depth)]
    result = git(*args, url, str(into), check=False)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or [""])[-1]
        raise EnvRepoError(f"{url}: cannot clone branch {BRANCH}: {last}")
    return into


def current_release(url: str) -> tuple[str, ReleaseManifest | None]:
    """(head commit, manifest of the release it holds or None for a freshly seeded repo)."""
    with tempfile.TemporaryDirectory(prefix="gitops-env-") as tmp:
        work = clone(url, Path(tmp) / "repo")
        head = git("rev-parse", "HEAD", cwd=work).stdout.strip()
        release = work / RELEASE_DIR
        return head, (read_manifest(release) if (release / MANIFEST).exists() else None)


def checkout_head(url: str, into: Path) -> Path:
    """A working copy of the env repo at its head (a pipeline's Source action)."""
    return clone(url, into)


def history(url: str, limit: int = 50) -> list[Deployment]:
    """The env repo's deployments, newest first (commits whose trailer names a release)."""
    with tempfile.TemporaryDirectory(prefix="gitops-env-") as tmp:
        work = clone(url, Path(tmp) / "repo", depth=None)
        fmt = f"%H%x1f%(trailers:key={TRAILER},valueonly,separator=)%x1f%s%x1f%cI"
        out = git("log", f"-{limit}", f"--format={fmt}", cwd=work).stdout
    deployments = []
    for line in out.splitlines():
        commit, release_id, subject, date = line.split("\x1f")
        deployments.append(Deployment(commit, release_id.strip() or None, subject, date))
    return deployments


def release_at(url: str, release_id: str, into: Path) -> Path:
    """Extract the release that the env repo held at some point of its history into `into`."""
    matches = [d for d in history(url, limit=1000) if d.release_id and d.release_id.startswith(release_id)]
    if not matches:
        raise EnvRepoError(f"{url}: no deployment of release {release_id} in this environment's history")
    if len({d.release_id for d in matches}) > 1:
        raise EnvRepoError(f"{url}: release prefix {release_id} is ambiguous; give more characters")
    with tempfile.TemporaryDirectory(prefix="gitops-env-") as tmp:
        work = clone(url, Path(tmp) / "repo", depth=None)
        git("checkout", "-q", matches[0].commit, cwd=work)
        shutil.copytree(work / RELEASE_DIR, into)
    load_release(into)
    return into


def _check_committed(work: Path, manifest: ReleaseManifest) -> None:
    """What is pushed is the commit, not the work tree: its blobs must hash as the manifest lists."""
    import hashlib

    listing = git("ls-tree", "-r", "-z", "HEAD", "--", RELEASE_DIR, cwd=work).stdout.split("\0")
    blobs = {}
    for entry in filter(None, listing):
        meta, path = entry.split("\t", 1)
        blobs[path.removeprefix(RELEASE_DIR + "/")] = meta.split()[2]
    expected = set(manifest.files) | {MANIFEST}
    if set(blobs) != expected:
        odd = sorted(set(blobs) ^ expected)[0]
        raise EnvRepoError(f"the commit's release/ differs from the release at {odd}; nothing was pushed")
    for rel, sha in manifest.files.items():
        data = subprocess.run(["git", "cat-file", "blob", blobs[rel]], cwd=work, capture_output=True, check=True).stdout
        if hashlib.sha256(data).hexdigest() != sha:
            raise EnvRepoError(f"the commit's release/{rel} differs from the release; nothing was pushed")


def _holds_intact(release: Path, release_id: str) -> bool:
    """The repo holds exactly this release, every byte (a tampered copy claiming its id is replaced)."""
    try:
        return load_release(release).release_id == release_id
    except GitopsError:
        return False


def _replace_release(work: Path, release_dir: Path) -> None:
    target = work / RELEASE_DIR
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(release_dir, target, copy_function=shutil.copyfile)


def push_release(
    url: str,
    release_dir: Path,
    subject: str,
    trailers: dict[str, str] | None = None,
    *,
    max_attempts: int = 5,
    before_push: Callable[[Path], None] | None = None,
) -> PushResult:
    """Commit release_dir as the repo's release/ and push it fast-forward, converging under races.

    The release is copied byte for byte and re-verified inside the commit before the push.
    `before_push` is a test hook (fault injection) called with the work tree just before pushing.
    """
    manifest = load_release(release_dir)
    for attempt in range(1, max_attempts + 1):
        with tempfile.TemporaryDirectory(prefix="gitops-push-") as tmp:
            work = clone(url, Path(tmp) / "repo")
            held = work / RELEASE_DIR / MANIFEST
            if held.exists() and _holds_intact(work / RELEASE_DIR, manifest.release_id):
                head = git("rev-parse", "HEAD", cwd=work).stdout.strip()
                return PushResult(head, manifest.release_id, changed=False, attempts=attempt)
            _replace_release(work, release_dir)
            if load_release(work / RELEASE_DIR).release_id != manifest.release_id:
                raise EnvRepoError(f"{release_dir}: copy into the env repo does not reproduce the release id")
            git(*_VERBATIM, "add", "-A", "-f", "--", RELEASE_DIR, cwd=work)
            lines = [subject, "", f"{TRAILER}: {manifest.release_id}"]
            lines += [f"{k}: {v}" for k, v in (trailers or {}).items()]
            git(*commit_identity(), *_VERBATIM, "commit", "-q", "-m", "\n".join(lines), cwd=work)
            _check_committed(work, manifest)
            if before_push:
                before_push(work)
            pushed = git("push", "-q", "origin", f"HEAD:refs/heads/{BRANCH}", cwd=work, check=False)
            if pushed.returncode == 0:
                head = git("rev-parse", "HEAD", cwd=work).stdout.strip()
                return PushResult(head, manifest.release_id, changed=True, attempts=attempt)
            if "rejected" not in pushed.stderr and "fetch first" not in pushed.stderr:
                last = (pushed.stderr.strip().splitlines() or [""])[-1]
                raise EnvRepoError(f"{url}: push failed: {last}")
            # Someone else moved the branch: start over from the new head (it may hold our release).
    raise EnvRepoError(f"{url}: push kept losing races after {max_attempts} attempts; nothing was changed")
