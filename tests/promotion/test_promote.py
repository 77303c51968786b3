"""Promotion safety (docs/design.md §7): what was approved is what moves, atomically, exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest
from promotion_env import STAGES, make_release, prod_release_id, ready

from gitops.promotion import envrepo
from gitops.promotion.envrepo import EnvRepoError
from gitops.promotion.promote import PromotionRefused, promote_release, publish_release, rollback_stage
from gitops.promotion.state import ApprovalMissing
from gitops.scan.attestation import GateRefused


def _tree(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_happy_path_copies_the_exact_bytes(tmp_path, env):
    target, state, evidence = env
    release, manifest = ready(tmp_path, target, state, "a")
    result = promote_release(release, "dev", "prod", target, evidence)
    assert result.changed and result.release_id == manifest.release_id
    work = envrepo.clone(target.env_repo_url(STAGES["prod"]), tmp_path / "prod-checkout")
    assert _tree(work / "release") == _tree(release)
    message = envrepo.git("log", "-1", "--format=%B", cwd=work).stdout
    assert f"Release-Id: {manifest.release_id}" in message
    assert "Promoted-From: dev" in message


def test_second_promote_is_a_no_op(tmp_path, env):
    target, state, evidence = env
    release, _ = ready(tmp_path, target, state, "a")
    first = promote_release(release, "dev", "prod", target, evidence)
    again = promote_release(release, "dev", "prod", target, evidence)
    assert not again.changed and again.commit == first.commit


def test_failed_release_is_refused(tmp_path, env):
    # A release never scanned here is scanned by the gate itself: tests/scan/test_attestation.py.
    target, *_ = env
    release = tmp_path / "r"
    make_release(release, "x", scan_passed=False)
    with pytest.raises(GateRefused, match="failed its policy scan.*CKV_AWS_53"):
        publish_release(release, "dev", target)


def test_unverified_release_is_refused(tmp_path, env):
    target, state, evidence = env
    release = tmp_path / "r"
    make_release(release, "x")
    publish_release(release, "dev", target)
    with pytest.raises(PromotionRefused, match="not deployed and verified in dev"):
        promote_release(release, "dev", "prod", target, evidence)
    assert prod_release_id(target) is None


def test_unpublished_release_is_refused(tmp_path, env):
    target, state, evidence = env
    release = tmp_path / "r"
    manifest = make_release(release, "x")
    state.record_verified("dev", manifest.release_id)
    with pytest.raises(PromotionRefused, match="never published to dev"):
        promote_release(release, "dev", "prod", target, evidence)


def test_approval_for_a_cannot_promote_b(tmp_path, env):
    target, state, evidence = env
    ready(tmp_path, target, state, "a", approve=True)
    release_b, manifest_b = ready(tmp_path, target, state, "b", approve=False)
    with pytest.raises(ApprovalMissing, match=f"release {manifest_b.release_id[:12]} has no approval"):
        promote_release(release_b, "dev", "prod", target, evidence)
    assert prod_release_id(target) is None


def test_rejected_release_is_refused_with_the_reason(tmp_path, env):
    target, state, evidence = env
    release, manifest = ready(tmp_path, target, state, "a", approve=False)
    state.decide("dev", manifest.release_id, approved=False, summary="latency regression")
    with pytest.raises(ApprovalMissing, match="was rejected in stage dev.*latency regression"):
        promote_release(release, "dev", "prod", target, evidence)
    with pytest.raises(ApprovalMissing, match="already rejected"):
        state.decide("dev", manifest.release_id, approved=True)


def test_wrong_direction_is_refused(tmp_path, env):
    target, state, evidence = env
    release, _ = ready(tmp_path, target, state, "a")
    with pytest.raises(PromotionRefused, match="stage prod promotes to nothing"):
        promote_release(release, "prod", "dev", target, evidence)


@pytest.mark.slow  # 28 injected crashes, each a real promote with its git calls
def test_a_crash_at_any_git_step_leaves_old_or_new_and_rerun_converges(tmp_path, env, monkeypatch):
    target, state, evidence = env
    old_release, old = ready(tmp_path, target, state, "old")
    promote_release(old_release, "dev", "prod", target, evidence)
    new_release, new = ready(tmp_path, target, state, "new")

    real_git = envrepo.git
    calls = {"n": 0}

    def counting(*args, **kwargs):
        calls["n"] += 1
        return real_git(*args, **kwargs)

    monkeypatch.setattr(envrepo, "git", counting)
    promote_release(new_release, "dev", "prod", target, evidence)  # learn how many git calls one promote makes
    total = calls["n"]
    assert total >= 5
    rollback_stage(STAGES["prod"], old.release_id, target)  # prod back at "old" for the fault runs

    for crash_at in range(1, total + 1):
        calls["n"] = 0

        def crashing(*args, crash_at=crash_at, **kwargs):
            calls["n"] += 1
            if calls["n"] == crash_at:
                raise EnvRepoError(f"injected crash at git call {crash_at}")
            return real_git(*args, **kwargs)

        monkeypatch.setattr(envrepo, "git", crashing)
        with pytest.raises(EnvRepoError, match="injected crash"):
            promote_release(new_release, "dev", "prod", target, evidence)
        monkeypatch.setattr(envrepo, "git", real_git)
        assert prod_release_id(target) in (old.release_id, new.release_id)
        promote_release(new_release, "dev", "prod", target, evidence)  # re-run converges
        assert prod_release_id(target) == new.release_id
        rollback_stage(STAGES["prod"], old.release_id, target)

    history = envrepo.history(target.env_repo_url(STAGES["prod"]), limit=1000)
    # Every promote of "new" was followed by exactly one rollback: never two "new" commits in a row.
    ids = [d.release_id for d in history if d.release_id]
    assert all(a != b for a, b in zip(ids, ids[1:], strict=False))


def test_crash_just_before_push_leaves_prod_untouched(tmp_path, env):
    target, state, evidence = env
    release, _ = ready(tmp_path, target, state, "a")

    def crash(_work: Path) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        promote_release(release, "dev", "prod", target, evidence, before_push=crash)
    assert prod_release_id(target) is None


def test_a_users_global_gitignore_cannot_drop_release_files(tmp_path, env, monkeypatch):
    target, state, evidence = env
    ignore = tmp_path / "global-ignore"
    ignore.write_text("*.py\n*.json\n")
    config = tmp_path / "gitconfig"
    config.write_text(f"[core]\n\texcludesFile = {ignore}\n\tautocrlf = true\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    release, manifest = ready(tmp_path, target, state, "a")
    work = envrepo.clone(target.env_repo_url(STAGES["dev"]), tmp_path / "dev-checkout")
    assert _tree(work / "release") == _tree(release)
