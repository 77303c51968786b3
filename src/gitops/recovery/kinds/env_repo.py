"""The env repository's history (the stage's deploy history): a `git bundle` of every ref, pushed back fast-forward."""

from __future__ import annotations

from pathlib import Path

from botocore.exceptions import ClientError

from gitops.deploy.aws import error_code
from gitops.machine import scratch
from gitops.promotion import envrepo
from gitops.promotion.envrepo import BRANCH, git
from gitops.recovery.inventory import Difference, RestoreOutcome, StageContext
from gitops.recovery.manifest import ManifestEntry, entry_for


def repository_arn(ctx: StageContext) -> str:
    cfg = ctx.stage
    return f"arn:aws:codecommit:{cfg.region}:{cfg.account}:{cfg.env_repository_name}"


def remote_head(url: str) -> str | None:
    """The commit the repository's main branch points at; None if the repository or the branch does not exist."""
    found = git("ls-remote", url, f"refs/heads/{BRANCH}", check=False)
    if found.returncode != 0 or not found.stdout.strip():
        return None
    return found.stdout.split()[0]


def ensure_repository(ctx: StageContext) -> bool:
    """Create the (empty) repository if the wipe took it; True if it was created."""
    if ctx.target.is_local:
        bare = Path(ctx.env_repo_url)
        if (bare / "HEAD").exists():
            return False
        bare.mkdir(parents=True, exist_ok=True)
        git("init", "-q", "--bare", "-b", BRANCH, str(bare))
        return True
    codecommit = ctx.client("codecommit")
    try:
        codecommit.get_repository(repositoryName=ctx.stage.env_repository_name)
        return False
    except ClientError as exc:
        if error_code(exc) != "RepositoryDoesNotExistException":
            raise
    codecommit.create_repository(repositoryName=ctx.stage.env_repository_name)
    return True


class EnvRepoHistory:
    name = "env-repo"
    holds = "the env repository's history: every release the stage held, who approved and promoted it"
    comes_back = (
        "restored: the bundle's main branch pushed back fast-forward (a repository with newer commits is refused)"
    )

    def backup(self, ctx: StageContext, objects: Path) -> list[ManifestEntry]:
        url = ctx.env_repo_url
        path = objects / self.name / f"{ctx.stage.stage}.bundle"
        path.parent.mkdir(parents=True, exist_ok=True)
        with envrepo.acting_as(ctx.target.repo_credentials(ctx.stage)), scratch("backup-env") as tmp:
            git("clone", "-q", "--mirror", url, str(tmp / "mirror.git"))
            head = git("rev-parse", f"refs/heads/{BRANCH}", cwd=tmp / "mirror.git").stdout.strip()
            commits = int(git("rev-list", "--count", head, cwd=tmp / "mirror.git").stdout.strip())
            git("bundle", "create", "-q", str(path.resolve()), "--all", cwd=tmp / "mirror.git")
        return [
            entry_for(
                objects,
                path,
                kind=self.name,
                name=f"{ctx.stage.env_repository_name} ({commits} commits)",
                source_arn=repository_arn(ctx),
                head=head,
                commits=commits,
            )
        ]

    def restore(self, ctx: StageContext, objects: Path, entries: list[ManifestEntry]) -> RestoreOutcome:
        outcome = RestoreOutcome()
        url = ctx.env_repo_url
        with envrepo.acting_as(ctx.target.repo_credentials(ctx.stage)):
            if ensure_repository(ctx):
                outcome.changed.append(f"{ctx.stage.env_repository_name} created (empty)")
            for entry in entries:
                head = entry.detail["head"]
                live = remote_head(url)
                if live == head:
                    outcome.unchanged += 1
                    continue
                with scratch("restore-env") as tmp:
                    work = tmp / "work"
                    git("clone", "-q", "--branch", BRANCH, str(objects / entry.path), str(work))
                    if live is not None:
                        git("fetch", "-q", url, f"refs/heads/{BRANCH}", cwd=work)
                        if git("merge-base", "--is-ancestor", live, head, cwd=work, check=False).returncode != 0:
                            outcome.not_restored.append(
                                f"{entry.name}: the live repository has commits the backup lacks ({live[:10]});"
                                " not overwritten"
                            )
                            continue
                    git("push", "-q", url, f"{head}:refs/heads/{BRANCH}", cwd=work)
                outcome.changed.append(f"{entry.name} pushed (head {head[:10]})")
        return outcome

    def compare(self, ctx: StageContext, objects: Path, entries: list[ManifestEntry]) -> list[Difference]:
        with envrepo.acting_as(ctx.target.repo_credentials(ctx.stage)):
            live = remote_head(ctx.env_repo_url)
        return [
            Difference(self.name, e.name, f"head {live[:10] if live else 'missing'}, backed up {e.detail['head'][:10]}")
            for e in entries
            if live != e.detail["head"]
        ]
