"""Publishing and promotion: move a release into an env repository, only when it has earned it.

publish: a scanned release into the first stage's repository.
promote: the release a stage holds, byte for byte, into the next stage's repository, only if it
passed scan, was deployed and verified in the source stage, was approved for exactly its id, and
is newer in the source stage's history than what the next stage holds (forward only; lineage.py).
Rollback republishes a release from the stage's own history (docs/design.md §7).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gitops.config import StageConfig
from gitops.errors import GitopsError
from gitops.machine import scratch
from gitops.model.promotion import carry_model
from gitops.promotion import envrepo
from gitops.promotion.app_image import carry_image
from gitops.promotion.evidence import Evidence, require_approved
from gitops.promotion.lineage import Lineage
from gitops.release.manifest import load_release, load_stage_config_from_release
from gitops.scan.attestation import require_gate
from gitops.target import Target


class PromotionRefused(GitopsError):
    hint = "promote only a release that was scanned, deployed and verified, and approved for its exact id"


class PromotionLost(PromotionRefused):
    """Another promotion moved the target stage to a newer release while this one ran."""

    hint = "nothing to do for this release: the stage holds a newer one (`gitops status`)"


@dataclass(frozen=True)
class MoveResult:
    stage: str
    release_id: str
    commit: str
    changed: bool
    previous_release_id: str | None
    superseded_by: str | None = None  # promote: the newer release the source stage holds now, if any


def first_stage(stages: dict[str, StageConfig]) -> StageConfig:
    targets = {c.promote_to for c in stages.values()}
    return next(c for c in stages.values() if c.stage not in targets)


def publish_release(release_dir: Path, stage: str, target: Target, source_commit: str | None = None) -> MoveResult:
    """Commit a scanned release into the stage's env repository (the "git push to dev")."""
    require_gate(release_dir)
    manifest = load_release(release_dir)
    cfg = load_stage_config_from_release(release_dir, stage)
    url = target.env_repo_url(cfg)
    trailers = {"Source-Commit": source_commit or manifest.source_commit or "unknown"}
    pushed = envrepo.push_release(url, release_dir, f"Release {manifest.short_id}", trailers)
    return MoveResult(stage, manifest.release_id, pushed.commit, pushed.changed, pushed.previous_release_id)


def source_lineage(url: str, stage: str) -> Lineage:
    return Lineage.from_history(stage, envrepo.history(url, limit=100_000))


def _forward_only(release_id: str, to_stage: str, lineage: Lineage, source_url: str) -> envrepo.Guard:
    """The guard of a promotion's push: the target stage moves only to a release newer in dev's order."""
    seen: list[str | None] = []
    short = release_id[:12]

    def guard(head: envrepo.Head) -> None:
        nonlocal lineage
        held = head.release_id or head.trailer
        seen.append(held)
        if held is None:
            return
        if not lineage.knows(held):  # published to the source stage after we read its history?
            lineage = source_lineage(source_url, lineage.stage)
        if not lineage.knows(held):
            raise PromotionRefused(
                f"stage {to_stage} holds release {held[:12]}, which {lineage.stage}'s history does not contain:"
                f" cannot tell whether {short} is newer; refusing",
                hint=f"check {to_stage}'s env repo history (`gitops status`); a downgrade is `gitops rollback`",
            )
        if not lineage.newer(held, release_id):
            return
        if held == seen[0]:
            raise PromotionRefused(
                f"release {short} is older than release {held[:12]} that {to_stage} holds ({lineage.stage}'s order):"
                " promote only moves forward",
                hint=f"to go back, `gitops rollback --stage {to_stage} --to {short}` (from {to_stage}'s own history)",
            )
        raise PromotionLost(
            f"lost the race: {to_stage} now holds release {held[:12]}, newer than {short} in {lineage.stage}'s"
            f" order, pushed by another promotion; {short} was not promoted"
        )

    return guard


def promote_release(
    release_dir: Path,
    from_stage: str,
    to_stage: str,
    target: Target,
    evidence: Evidence,
    *,
    before_push: Callable[[Path], None] | None = None,
) -> MoveResult:
    """Copy a release the source stage holds (or held) into the next stage's repository, forward only.

    The release must be in the source stage's history, verified and approved there for exactly its
    id, and newer in that history than what the target stage holds; the push is a compare-and-swap
    whose retries re-check that, so two racing promotions end on the newer release.
    """
    require_gate(release_dir)
    manifest = load_release(release_dir)
    source = load_stage_config_from_release(release_dir, from_stage)
    dest = load_stage_config_from_release(release_dir, to_stage)
    if source.promote_to != to_stage:
        raise PromotionRefused(f"stage {from_stage} promotes to {source.promote_to or 'nothing'}, not to {to_stage}")
    source_url = target.env_repo_url(source)
    lineage = source_lineage(source_url, from_stage)
    if not lineage.knows(manifest.release_id):
        raise PromotionRefused(f"release {manifest.short_id} was never published to {from_stage}")
    if not evidence.verified(source, manifest.release_id):
        raise PromotionRefused(f"release {manifest.short_id} was not deployed and verified in {from_stage}")
    approval = require_approved(evidence, source, manifest.release_id)
    trailers = {"Promoted-From": from_stage, "Approved-By": approval.decided_by or "unknown"}
    if approval.execution_id:
        trailers["Approval-Execution"] = approval.execution_id
    # The app image travels with the release: its digest into the target stage's own repository, checked.
    image = carry_image(release_dir, source, dest, target)
    if image is not None:
        trailers["App-Image"] = image.image
    # The model travels with the release: its bytes into the target stage's own bucket and registry.
    carried = carry_model(release_dir, source, dest, target)
    if carried is not None:
        trailers["Model-Sha256"] = carried.artifact.sha256
    with envrepo.acting_as(target.repo_credentials(dest)):  # the target stage's account, on AWS
        pushed = envrepo.push_release(
            target.env_repo_url(dest),
            release_dir,
            f"Promote release {manifest.short_id} from {from_stage}",
            trailers,
            guard=_forward_only(manifest.release_id, to_stage, lineage, source_url),
            before_push=before_push,
        )
    newer = lineage.head if lineage.head != manifest.release_id else None
    return MoveResult(
        to_stage, manifest.release_id, pushed.commit, pushed.changed, pushed.previous_release_id, superseded_by=newer
    )


def held_release(stage: StageConfig, target: Target, into: Path) -> Path:
    """A copy of the release the stage's env repository holds now: its head names it and holds it whole."""
    if envrepo.copy_head_release(target.env_repo_url(stage), stage.stage, into) is None:
        raise PromotionRefused(f"stage {stage.stage} holds no release yet (publish one first)")
    return into


def rollback_stage(stage: StageConfig, release_prefix: str, target: Target) -> MoveResult:
    """Republish a release from the stage's own history as a new commit (history stays linear)."""
    url = target.env_repo_url(stage)
    with scratch("rollback") as tmp:
        release = envrepo.release_at(url, release_prefix, tmp / "release")
        manifest = load_release(release)
        previous = envrepo.head_of(url)
        subject = f"Roll back to release {manifest.short_id}"
        pushed = envrepo.push_release(url, release, subject, {"Rollback-From": previous.release_id or "none"})
    return MoveResult(stage.stage, manifest.release_id, pushed.commit, pushed.changed, pushed.previous_release_id)
