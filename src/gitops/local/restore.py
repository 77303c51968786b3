"""The embedded target's AWS state after a restart: deployed again from what each env repository holds.

moto keeps AWS state in memory, so a stopped server forgets the stacks, pipelines and assets. The env
repositories are on disk and are the truth (GitOps): deploying each stage's held release puts the
same state back. What git does not hold comes back empty: model packages, pipeline executions,
Feature Store records (backup/restore is their path).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from gitops.config import StageConfig
from gitops.progress import Progress, silent
from gitops.target import Target

NOT_RESTORED = "model packages, pipeline executions and feature records are not in git and start empty"


@dataclass(frozen=True)
class Restored:
    stage: str
    release_id: str | None  # None: the stage held no release, nothing to deploy
    seconds: float = 0.0


def _prefixed(progress: Progress, stage: str) -> Progress:
    def say(line: str) -> None:
        progress(f"{stage}: {line}")

    return say


def restore_from_env_repos(
    target: Target, stages: dict[str, StageConfig], progress: Progress = silent
) -> list[Restored]:
    """Deploy each stage's held release to a freshly started embedded target, in the stages' order."""
    from gitops.deploy.apply import deploy_stage
    from gitops.promotion import envrepo

    done = []
    for name, cfg in stages.items():
        with tempfile.TemporaryDirectory(prefix="gitops-restore-") as tmp:
            held = envrepo.copy_head_release(target.env_repo_url(cfg), name, Path(tmp) / "release")
            if held is None:
                progress(f"{name}: holds no release; nothing to restore")
                done.append(Restored(name, None))
                continue
            report = deploy_stage(held, name, target, progress=_prefixed(progress, name))
            report.raise_for_failure()
            progress(f"{name}: release {report.release_id[:12]} deployed again ({report.seconds:.0f}s)")
            done.append(Restored(name, report.release_id, report.seconds))
    return done
