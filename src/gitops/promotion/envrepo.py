"""Environment repositories: read the release a stage holds, and move it with one atomic push.

An env repo holds the stage's current release under release/; its git history is the stage's
deploy history. A stage holds a release only when its head commit names it in its own Release-Id
trailer and its release/ tree is exactly that release, every byte.

Every update is one commit pushed as a compare-and-swap on the head it was made from: a crash at
any point leaves the remote at the old release or the new one, and a lost race is retried against
the new head only after the caller's guard accepts what that head holds now (docs/design.md §7.3,
§7.4). Clones live in the machine's scratch work directory (gitops.machine.scratch).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from gitops.errors import GitopsError, ReleaseError
from gitops.machine import scratch
from gitops.release.manifest import MANIFEST, ReleaseManifest, load_release

RELEASE_DIR = "release"
BRANCH = "main"
TRAILER = "Release-Id"
# Whatever the user's git config says: no global ignores, no line-ending filters on release files.
_VERBATIM = ("-c", "core.excludesFile=/dev/null", "-c", "core.autocrlf=false", "-c", "core.safecrlf=false")


class EnvRepoError(GitopsError):
    hint = "check the environment repository URL and your git credentials (git-remote-codecommit on AWS)"


class TamperedEnvRepo(ReleaseError):
    """An env repo's head does not hold, every byte, the release its own trailer names."""


@dataclass(frozen=True)
class Deployment:
    """One commit of an env repo's history that carries a release."""

    commit: str
    release_id: str | None
    subject: str
    date: str


@dataclass(frozen=True)
class Head:
    """What an env repo's head commit holds."""

    commit: str
    trailer: str | None  # the Release-Id trailer of the head commit itself
    manifest: ReleaseManifest | None  # the release under release/, verified in full; None if none or not intact
    problem: str | None = None  # why release/ is not the trailer's release, every byte (None: it is, or empty)

    @property
    def release_id(self) -> str | None:
        """The release the stage holds: the head names it and its tree is exactly it (else None)."""
        return self.manifest.release_id if self.manifest is not None and self.problem is None else None


@dataclass(frozen=True)
class PushResult:
    commit: str
    release_id: str
    changed: bool  # False when the repo already held this release (idempotent re-run)
    attempts: int
    previous_release_id: str | None  # what the head this commit was pushed onto held (or the head, if unchanged)


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


def _head_trailer(work: Path) -> str | None:
    out = git("log", "-1", f"--format=%(trailers:key={TRAILER},valueonly,separator=)", cwd=work).stdout.strip()
    return out or None


def read_head(work: Path) -> Head:
    """The release a clone's head commit holds, checked: its own trailer, and release/ as that release."""
    commit = git("rev-parse", "HEAD", cwd=work).stdout.strip()
    trailer = _head_trailer(work)
    release = work / RELEASE_DIR
    if not (release / MANIFEST).exists():
        return Head(commit, trailer, None, f"release/{MANIFEST} is missing" if trailer else None)
    try:
        manifest = load_release(release)
    except GitopsError as exc:
        return Head(commit, trailer, None, str(exc).replace(str(work) + "/", ""))
    if trailer != manifest.release_id:
        named = f"names release {trailer[:12]}" if trailer else "names no release"
        return Head(commit, trailer, manifest, f"head commit {commit[:10]} {named}, its tree holds {manifest.short_id}")
    return Head(commit, trailer, manifest)


def head_of(url: str) -> Head:
    """The head of the env repo at url, and the release it holds."""
    with scratch("env") as tmp:
        return read_head(clone(url, tmp / "repo"))


def current_release(url: str) -> tuple[str, ReleaseManifest | None]:
    """(head commit, the release it holds, None for a freshly seeded or tampered repo)."""
    head = head_of(url)
    return head.commit, (head.manifest if head.release_id else None)


def tamper_hint(url: str, head: Head) -> str:
    return (
        f"restore the env repo to its last published commit: `git revert {head.commit[:10]}` in a clone of {url}"
        " (or `gitops rollback` to a release of its history), then push; never edit release/ by hand"
    )


def require_intact(url: str, head: Head, stage: str) -> ReleaseManifest:
    """The release the head holds, or an error saying why the stage holds none and how to mend it."""
    if head.release_id is None:
        if head.problem:
            raise TamperedEnvRepo(f"stage {stage}: {head.problem}", hint=tamper_hint(url, head))
        raise EnvRepoError(f"stage {stage} holds no release yet", hint="`gitops publish` a release to it first")
    assert head.manifest is not None
    return head.manifest


def checkout_head(url: str, into: Path) -> Path:
    """A working copy of the env repo at its head (a pipeline's Source action)."""
    return clone(url, into)


def copy_head_release(url: str, stage: str, into: Path) -> Path | None:
    """Copy the release the env repo's head holds into `into`; None if it holds none yet (freshly seeded).

    A head whose tree is not, every byte, the release its own trailer names is refused (TamperedEnvRepo).
    """
    with scratch("head") as tmp:
        work = checkout_head(url, tmp / "repo")
        head = read_head(work)
        if head.trailer is None and head.manifest is None and head.problem is None:
            return None
        require_intact(url, head, stage)
        shutil.copytree(work / RELEASE_DIR, into)
    load_release(into)
    return into


def history(url: str, limit: int = 50) -> list[Deployment]:
    """The env repo's deployments, newest first (commits whose trailer names a release)."""
    with scratch("env") as tmp:
        work = clone(url, tmp / "repo", depth=None)
        fmt = f"%H%x1f%(trailers:key={TRAILER},valueonly,separator=)%x1f%s%x1f%cI"
        out = git("log", "--first-parent", f"-{limit}", f"--format={fmt}", cwd=work).stdout
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
    with scratch("env") as tmp:
        work = clone(url, tmp / "repo", depth=None)
        git("checkout", "-q", matches[0].commit, cwd=work)
        shutil.copytree(work / RELEASE_DIR, into)
    load_release(into)
    return into


def _check_committed(work: Path, manifest: ReleaseManifest) -> None:
    """What is pushed is the commit, not the work tree: its blobs must hash as the manifest lists."""
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


def _replace_release(work: Path, release_dir: Path) -> None:
    target = work / RELEASE_DIR
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(release_dir, target, copy_function=shutil.copyfile)


class PushRefused(EnvRepoError):
    """The caller's guard refused what the env repo's head holds now (a newer release, a lost race)."""


Guard = Callable[[Head], None]


def push_release(
    url: str,
    release_dir: Path,
    subject: str,
    trailers: dict[str, str] | None = None,
    *,
    guard: Guard | None = None,
    max_attempts: int = 10,
    before_push: Callable[[Path], None] | None = None,
) -> PushResult:
    """Commit release_dir as the repo's release/ and push it as a compare-and-swap on the head read.

    `guard(head)` sees what the head holds before each attempt and raises to stop (PushRefused):
    after a lost race it decides again on the new head, so a newer release is never overwritten by
    a retry. The release is copied byte for byte and re-verified inside the commit before the push.
    `before_push` is a test hook (fault injection) called with the work tree just before pushing.
    """
    manifest = load_release(release_dir)
    for attempt in range(1, max_attempts + 1):
        with scratch("push") as tmp:
            work = clone(url, tmp / "repo")
            head = read_head(work)
            if head.release_id == manifest.release_id:
                return PushResult(head.commit, manifest.release_id, False, attempt, head.release_id)
            if guard:
                guard(head)
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
            # Compare-and-swap: the remote ref moves only if it is still the head this commit was made on.
            lease = f"--force-with-lease=refs/heads/{BRANCH}:{head.commit}"
            ref = f"HEAD:refs/heads/{BRANCH}"
            pushed = git("push", "-q", "--porcelain", lease, "origin", ref, cwd=work, check=False)
            if pushed.returncode == 0:
                commit = git("rev-parse", "HEAD", cwd=work).stdout.strip()
                return PushResult(commit, manifest.release_id, True, attempt, head.release_id)
            said = pushed.stdout + pushed.stderr
            if not any(word in said for word in ("rejected", "stale info", "fetch first", "non-fast-forward")):
                last = (pushed.stderr.strip().splitlines() or [""])[-1]
                raise EnvRepoError(f"{url}: push failed: {last}")
            # Someone else moved the branch: decide again on the new head (it may hold our release).
    raise EnvRepoError(f"{url}: push kept losing races after {max_attempts} attempts; nothing was changed")
