"""Open the proposal's pull request: push its branch, then GitHub (`gh`) or CodeCommit (its API)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from gitops.errors import GitopsError
from gitops.model.propose import Proposal


class PullRequestFailed(GitopsError):
    hint = "the proposal's branch exists locally; push it and open the pull request by hand, or re-run"


def push_branch(root: Path, remote: str, branch: str) -> None:
    done = subprocess.run(
        ["git", "-C", str(root), "push", remote, f"refs/heads/{branch}:refs/heads/{branch}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise PullRequestFailed(f"git push {remote} {branch}: {last}")


def _title(proposal: Proposal) -> str:
    return proposal.description.splitlines()[0]


def open_github_pr(root: Path, proposal: Proposal, base: str) -> str:
    """`gh pr create`: its URL. gh reads GH_TOKEN (the workflow's token: contents + pull-requests write)."""
    gh = shutil.which("gh")
    if gh is None:
        raise PullRequestFailed("gh (the GitHub CLI) is not installed: it opens the pull request")
    assert proposal.branch is not None
    done = subprocess.run(
        [
            gh,
            "pr",
            "create",
            "--head",
            proposal.branch,
            "--base",
            base,
            "--title",
            _title(proposal),
            "--body-file",
            "-",
        ],
        cwd=root,
        input=proposal.description,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise PullRequestFailed(f"gh pr create: {last}")
    return done.stdout.strip()


def open_codecommit_pr(codecommit: Any, repository: str, proposal: Proposal, base: str) -> str:
    """CreatePullRequest in the source repository: its id."""
    assert proposal.branch is not None
    created = codecommit.create_pull_request(
        title=_title(proposal),
        description=proposal.description[:10240],
        targets=[{"repositoryName": repository, "sourceReference": proposal.branch, "destinationReference": base}],
    )
    return str(created["pullRequest"]["pullRequestId"])
