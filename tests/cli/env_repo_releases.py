"""A small release pushed into an env repository, for the CLI tests that read what a stage holds."""

from __future__ import annotations

from pathlib import Path

from release_builder import build_release

from gitops.config import load_stages
from gitops.promotion.envrepo import push_release
from gitops.release.manifest import StageSummary, stage_config_path
from gitops.release.pipelines import canonical_json

ROOT = Path(__file__).resolve().parents[2]


def published_release(out: Path, repo: Path) -> str:
    """A dev-only release with the real dev settings, committed into `repo` as a publish would."""
    cfg = load_stages(ROOT)["dev"]
    files = {stage_config_path("dev"): canonical_json(cfg.model_dump(mode="json"))}
    summary = StageSummary(account=cfg.account, region=cfg.region, promote_to=cfg.promote_to, stacks={}, pipelines={})
    release_id = build_release(out, files, {"dev": summary}).release_id
    push_release(str(repo), out, f"Publish release {release_id[:12]}")
    return release_id
