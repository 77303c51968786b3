"""Publishing and promotion: move a release into an env repository, only when it has earned it.

publish: a scanned release into the first stage's repository.
promote: the release a stage holds, byte for byte, into the next stage's repository, only if it
passed scan, was deployed and verified in the source stage, and was approved for exactly its id
(docs/design.md §7). Rollback republishes a release from the stage's own history.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gitops.config import StageConfig
from gitops.errors import GitopsError
from gitops.promotion import envrepo
from gitops.promotion.evidence import Evidence, require_approved
from gitops.release.manifest import load_release, load_stage_config_from_release
from gitops.scan.attestation import require_gate
from gitops.target import Target


class PromotionRefused(GitopsError):
    hint = "promote only a release that was scanned, deployed and verified, and approved for its exact id"


@dataclass(frozen=True)
class MoveResult:
    stage: str
    release_id: str
    commit: str
    changed: bool
    previous_release_id: str | None


def first_stage(stages: dict[str, StageConfig]) -> StageConfig:
    targets = {c.promote_to for c in stages.values()}
    return next(c for c in stages.values() if c.stage not in targets)


def publish_release(release_dir: Path, stage: str, target: Target, source_commit: str | None = None) -> MoveResult:
    """Commit a scanned release into the stage's env repository (the "git push to dev")."""
    require_gate(release_dir)
    manifest = load_release(release_dir)
    cfg = load_stage_config_from_release(release_dir, stage)
    url = target.env_repo_url(cfg)
    _, held = envrepo.current_release(url)
    trailers = {"Source-Commit": source_commit or manifest.source_commit or "unknown"}
    pushed = envrepo.push_release(url, release_dir, f"Release {manifest.short_id}", trailers)
    return MoveResult(stage, manifest.release_id, pushed.commit, pushed.changed, held.release_id if held else None)


def promote_release(
    release_dir: Path,
    from_stage: str,
    to_stage: str,
    target: Target,
    evidence: Evidence,
    *,
    before_push: Callable[[Path], None] | None = None,
) -> MoveResult:
    """Copy the source stage's release into the target stage's repository, after every check."""
    require_gate(release_dir)
    manifest = load_release(release_dir)
    source = load_stage_config_from_release(release_dir, from_stage)
    dest = load_stage_config_from_release(release_dir, to_stage)
    if source.promote_to != to_stage:
        raise PromotionRefused(f"stage {from_stage} promotes to {source.promote_to or 'nothing'}, not to {to_stage}")
    published = [d.release_id for d in envrepo.history(target.env_repo_url(source), limit=1000)]
    if manifest.release_id not in published:
        raise PromotionRefused(f"release {manifest.short_id} was never published to {from_stage}")
    if not evidence.verified(source, manifest.release_id):
        raise PromotionRefused(f"release {manifest.short_id} was not deployed and verified in {from_stage}")
    approval = require_approved(evidence, source, manifest.release_id)
    url = target.env_repo_url(dest)
    trailers = {
        "Promoted-From": from_stage,
        "Approved-By": approval.decided_by or "unknown",
    }
    with envrepo.acting_as(target.repo_credentials(dest)):  # the target stage's account, on AWS
        _, held = envrepo.current_release(url)
        pushed = envrepo.push_release(
            url,
            release_dir,
            f"Promote release {manifest.short_id} from {from_stage}",
            trailers,
            before_push=before_push,
        )
    return MoveResult(to_stage, manifest.release_id, pushed.commit, pushed.changed, held.release_id if held else None)


def held_release(stage: StageConfig, target: Target, into: Path) -> Path:
    """A working copy of the release the stage's env repository holds now (for promote / deploy)."""
    with tempfile.TemporaryDirectory(prefix="gitops-held-") as tmp:
        work = envrepo.checkout_head(target.env_repo_url(stage), Path(tmp) / "repo")
        release = work / envrepo.RELEASE_DIR
        if not release.exists():
            raise PromotionRefused(f"stage {stage.stage} holds no release yet (publish one first)")
        shutil.copytree(release, into)
    load_release(into)
    return into


def rollback_stage(stage: StageConfig, release_prefix: str, target: Target) -> MoveResult:
    """Republish a release from the stage's own history as a new commit (history stays linear)."""
    url = target.env_repo_url(stage)
    _, held = envrepo.current_release(url)
    previous = held.release_id if held else None
    with tempfile.TemporaryDirectory(prefix="gitops-rollback-") as tmp:
        release = envrepo.release_at(url, release_prefix, Path(tmp) / "release")
        manifest = load_release(release)
        subject = f"Roll back to release {manifest.short_id}"
        pushed = envrepo.push_release(url, release, subject, {"Rollback-From": previous or "none"})
    return MoveResult(stage.stage, manifest.release_id, pushed.commit, pushed.changed, previous)
