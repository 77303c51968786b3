"""The release id covers the manifest: an edit of any manifest field alone is refused, wherever it is read.

Issue 11's attacks: a `--release` directory whose `source_commit` and tool summary were rewritten
was promoted, and a commit to the dev env repository that edited only `source_commit` was
deployed and verified. Both are refused now, naming the manifest, before anything moves.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import release_builder

from gitops.config import load_stages
from gitops.deploy.apply import deploy_stage
from gitops.errors import ReleaseError
from gitops.local.embedded import seed_env_repo
from gitops.promotion import envrepo
from gitops.promotion.evidence import LocalEvidence
from gitops.promotion.promote import held_release, promote_release, publish_release
from gitops.promotion.state import LocalState
from gitops.release.manifest import (
    MANIFEST,
    StackSummary,
    StageSummary,
    load_release,
    stage_config_path,
)
from gitops.release.pipelines import canonical_json
from gitops.target import Target

ROOT = Path(__file__).resolve().parents[2]
STAGES = load_stages(ROOT)
REFUSAL = r"manifest\.json: release_id [0-9a-f]{12} does not match the manifest's content"


def build_release(out: Path) -> Path:
    files = {stage_config_path(name): canonical_json(cfg.model_dump(mode="json")) for name, cfg in STAGES.items()}
    files["stages/dev/templates/Base.template.json"] = canonical_json({"Resources": {}})
    files["stages/dev/templates/Base.assets.json"] = canonical_json({"stack_name": "mlops-dev-base", "files": []})
    release_builder.build_release(
        out,
        files,
        source_commit="1" * 40,
        tool_versions={"cfn-lint": "1.58.0"},
        stages={
            name: StageSummary(
                account=cfg.account,
                region=cfg.region,
                promote_to=cfg.promote_to,
                pipelines={},
                stacks={"Base": StackSummary(stack_name="mlops-dev-base", resources=0, resource_types={})}
                if name == "dev"
                else {},
            )
            for name, cfg in STAGES.items()
        },
    )
    return out


def _source_commit(doc: dict) -> None:
    doc["source_commit"] = "2" * 40


def _stage_summary(doc: dict) -> None:
    doc["stages"]["dev"]["stacks"]["Base"]["stack_name"] = "someone-elses-stack"


def _tool_version(doc: dict) -> None:
    doc["tool_versions"]["cfn-lint"] = "0.0.1"


EDITS: dict[str, Callable[[dict], None]] = {
    "source_commit": _source_commit,
    "stage summary": _stage_summary,
    "tool version": _tool_version,
}


def edit_manifest(release: Path, edit: Callable[[dict], None]) -> None:
    """Rewrite one manifest field, keeping its release_id and every file digest as they were."""
    path = release / MANIFEST
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc, sort_keys=True, indent=2) + "\n")


@pytest.fixture
def env(tmp_path: Path):
    local = tmp_path / "local"
    seeds = tmp_path / "seeds"
    for seed in ("seed_repo", "prod_repo"):
        (seeds / seed).mkdir(parents=True)
        (seeds / seed / "README.md").write_text(f"{seed}\n")
    for cfg in STAGES.values():
        seed_env_repo(seeds, local, cfg)
    target = Target("local", local, "http://127.0.0.1:1")  # no AWS call is reached: refused before
    return target, LocalState(local)


def _held(target: Target, stage: str) -> str | None:
    _, held = envrepo.current_release(target.env_repo_url(STAGES[stage]))
    return held.release_id if held else None


@pytest.mark.parametrize("field", EDITS)
def test_a_manifest_only_edit_in_a_release_directory_is_refused_naming_the_file(tmp_path, field):
    release = build_release(tmp_path / "release")
    edit_manifest(release, EDITS[field])
    with pytest.raises(ReleaseError, match=REFUSAL) as caught:
        load_release(release)
    assert str(release / MANIFEST) in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("field", EDITS)
def test_promote_refuses_an_edited_release_directory_and_prod_stays(tmp_path, env, field):
    target, state = env
    release = build_release(tmp_path / "release")
    published = publish_release(release, "dev", target)
    state.record_verified("dev", published.release_id)
    state.request_approval("dev", published.release_id)
    state.decide("dev", published.release_id, approved=True, summary="reviewed")
    edited = tmp_path / "edited"
    shutil.copytree(release, edited)
    edit_manifest(edited, EDITS[field])
    with pytest.raises(ReleaseError, match=REFUSAL):
        promote_release(edited, "dev", "prod", target, LocalEvidence(state))
    assert _held(target, "prod") is None


def test_a_dev_commit_that_edits_only_the_manifest_is_neither_deployed_nor_promoted(tmp_path, env):
    target, state = env
    published = publish_release(build_release(tmp_path / "release"), "dev", target)
    state.record_verified("dev", published.release_id)
    state.request_approval("dev", published.release_id)
    state.decide("dev", published.release_id, approved=True, summary="reviewed")
    # Someone with push access rewrites source_commit in dev's head commit, keeping the id.
    work = envrepo.clone(target.env_repo_url(STAGES["dev"]), tmp_path / "attacker")
    edit_manifest(work / envrepo.RELEASE_DIR, _source_commit)
    envrepo.git(*envrepo.commit_identity(), "commit", "-q", "-am", "Tweak", cwd=work)
    envrepo.git("push", "-q", "origin", "HEAD:main", cwd=work)

    checkout = envrepo.checkout_head(target.env_repo_url(STAGES["dev"]), tmp_path / "pipeline-source")
    with pytest.raises(ReleaseError, match=REFUSAL):  # the Deploy action's `gitops deploy`
        deploy_stage(checkout / envrepo.RELEASE_DIR, "dev", target)
    with pytest.raises(ReleaseError, match=REFUSAL):  # `gitops promote --from dev`: dev's head
        held_release(STAGES["dev"], target, tmp_path / "held")
    assert _held(target, "prod") is None
    # Publishing the genuine release again mends dev: the tampered copy is not taken for it.
    again = publish_release(tmp_path / "release", "dev", target)
    assert again.changed and again.release_id == published.release_id
    assert load_release(held_release(STAGES["dev"], target, tmp_path / "mended")).source_commit == "1" * 40


def test_the_cli_refuses_an_edited_release_in_one_line_naming_the_manifest(tmp_path, env):
    target, _ = env
    release = build_release(tmp_path / "release")
    edit_manifest(release, _source_commit)
    done = subprocess.run(
        [sys.executable, "-m", "gitops", "publish", "--to", "dev", "--release", str(release), "--target", "local"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "400", "GITOPS_LOCAL_DIR": str(target.local_dir)},
        timeout=120,
    )
    assert done.returncode == 1
    error, hint = done.stderr.strip().splitlines()
    assert error.startswith("error: ") and str(release / MANIFEST) in error
    assert len(error) - len(str(release)) < 200
    assert "edited after render" in error and "restore its last published commit (`git revert` the edit" in hint
    assert _held(target, "dev") is None
