"""Env repositories, releases and local state for promotion tests: one builder, shared."""

from __future__ import annotations

from pathlib import Path

from release_builder import build_release

from gitops.config import load_stages
from gitops.local.embedded import seed_env_repo
from gitops.promotion import envrepo
from gitops.promotion.evidence import LocalEvidence
from gitops.promotion.promote import publish_release
from gitops.promotion.state import LocalState
from gitops.release.assets import sha256_bytes
from gitops.release.manifest import (
    ReleaseManifest,
    StackSummary,
    StageSummary,
    stage_config_path,
)
from gitops.release.pipelines import canonical_json
from gitops.target import Target

ROOT = Path(__file__).resolve().parents[2]
STAGES = load_stages(ROOT)


def make_release(out: Path, marker: str, *, scanned: bool = True, scan_passed: bool = True) -> ReleaseManifest:
    files = {stage_config_path(name): canonical_json(cfg.model_dump(mode="json")) for name, cfg in STAGES.items()}
    files["stages/dev/templates/Base.template.json"] = canonical_json({"Resources": {}, "Description": marker})
    files[f"assets/{sha256_bytes(marker.encode())}/step.py"] = marker.encode()
    return build_release(
        out,
        files,
        {
            name: StageSummary(
                account=cfg.account,
                region=cfg.region,
                promote_to=cfg.promote_to,
                pipelines={},
                stacks={"Base": StackSummary(stack_name=f"{cfg.prefix}-base", resources=0, resource_types={})}
                if name == "dev"
                else {},
            )
            for name, cfg in STAGES.items()
        },
        scanned=scanned,
        scan_passed=scan_passed,
    )


def ready(tmp_path: Path, target, state, marker: str, *, approve: bool = True) -> tuple[Path, ReleaseManifest]:
    """A release published to dev, verified there and (optionally) approved."""
    release = tmp_path / f"release-{marker}"
    manifest = make_release(release, marker)
    publish_release(release, "dev", target)
    state.record_verified("dev", manifest.release_id)
    state.request_approval("dev", manifest.release_id)
    if approve:
        state.decide("dev", manifest.release_id, approved=True, summary="looks good")
    return release, manifest


def prod_release_id(target) -> str | None:
    _, held = envrepo.current_release(target.env_repo_url(STAGES["prod"]))
    return held.release_id if held else None


def make_env(tmp_path: Path) -> tuple[Target, LocalState, LocalEvidence]:
    """Seeded bare env repos for every stage and an empty local state (git only: no AWS call is made)."""
    local = tmp_path / "local"
    seeds = tmp_path / "src"
    for seed in ("seed_repo", "prod_repo"):
        (seeds / seed).mkdir(parents=True)
        (seeds / seed / "README.md").write_text(f"{seed}\n")
    for cfg in STAGES.values():
        seed_env_repo(seeds, local, cfg)
    target = Target("local", local, "http://127.0.0.1:1")
    state = LocalState(local)
    return target, state, LocalEvidence(state)
