"""Promotion safety (docs/design.md §7): what was approved is what moves, atomically, exactly once."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from release_attestation import attest_scanned

from gitops.config import load_stages
from gitops.local.embedded import seed_env_repo
from gitops.promotion import envrepo
from gitops.promotion.envrepo import EnvRepoError
from gitops.promotion.evidence import LocalEvidence
from gitops.promotion.promote import PromotionRefused, promote_release, publish_release, rollback_stage
from gitops.promotion.state import ApprovalMissing, LocalState
from gitops.release.assets import sha256_bytes
from gitops.release.manifest import (
    ReleaseManifest,
    StackSummary,
    StageSummary,
    seal_manifest,
    stage_config_path,
    write_release_dir,
)
from gitops.release.pipelines import canonical_json
from gitops.scan.attestation import GateRefused
from gitops.target import Target

ROOT = Path(__file__).resolve().parents[2]
STAGES = load_stages(ROOT)


def make_release(out: Path, marker: str, *, scanned: bool = True, scan_passed: bool = True) -> ReleaseManifest:
    files = {stage_config_path(name): canonical_json(cfg.model_dump(mode="json")) for name, cfg in STAGES.items()}
    files["stages/dev/templates/Base.template.json"] = canonical_json({"Resources": {}, "Description": marker})
    files[f"assets/{sha256_bytes(marker.encode())}/step.py"] = marker.encode()
    manifest = seal_manifest(
        files,
        engine_wheel="assets/none/engine.whl",
        stages={
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
    )
    write_release_dir(out, files, manifest)
    if scanned:
        attest_scanned(out, passed=scan_passed)
    return manifest


@pytest.fixture
def env(tmp_path: Path):
    local = tmp_path / "local"
    seeds = tmp_path / "src"
    for seed in ("seed_repo", "prod_repo"):
        (seeds / seed).mkdir(parents=True)
        (seeds / seed / "README.md").write_text(f"{seed}\n")
    for cfg in STAGES.values():
        seed_env_repo(seeds, local, cfg)
    target = Target("local", local, "http://127.0.0.1:1")  # git-only tests: no AWS call is made
    state = LocalState(local)
    return target, state, LocalEvidence(state)


def _ready(tmp_path: Path, target, state, marker: str, *, approve: bool = True) -> tuple[Path, ReleaseManifest]:
    """A release published to dev, verified there and (optionally) approved."""
    release = tmp_path / f"release-{marker}"
    manifest = make_release(release, marker)
    publish_release(release, "dev", target)
    state.record_verified("dev", manifest.release_id)
    state.request_approval("dev", manifest.release_id)
    if approve:
        state.decide("dev", manifest.release_id, approved=True, summary="looks good")
    return release, manifest


def _prod_release_id(target) -> str | None:
    _, held = envrepo.current_release(target.env_repo_url(STAGES["prod"]))
    return held.release_id if held else None


def _tree(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_happy_path_copies_the_exact_bytes(tmp_path, env):
    target, state, evidence = env
    release, manifest = _ready(tmp_path, target, state, "a")
    result = promote_release(release, "dev", "prod", target, evidence)
    assert result.changed and result.release_id == manifest.release_id
    work = envrepo.clone(target.env_repo_url(STAGES["prod"]), tmp_path / "prod-checkout")
    assert _tree(work / "release") == _tree(release)
    message = envrepo.git("log", "-1", "--format=%B", cwd=work).stdout
    assert f"Release-Id: {manifest.release_id}" in message
    assert "Promoted-From: dev" in message


def test_second_promote_is_a_no_op(tmp_path, env):
    target, state, evidence = env
    release, _ = _ready(tmp_path, target, state, "a")
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
    assert _prod_release_id(target) is None


def test_unpublished_release_is_refused(tmp_path, env):
    target, state, evidence = env
    release = tmp_path / "r"
    manifest = make_release(release, "x")
    state.record_verified("dev", manifest.release_id)
    with pytest.raises(PromotionRefused, match="never published to dev"):
        promote_release(release, "dev", "prod", target, evidence)


def test_approval_for_a_cannot_promote_b(tmp_path, env):
    target, state, evidence = env
    _ready(tmp_path, target, state, "a", approve=True)
    release_b, manifest_b = _ready(tmp_path, target, state, "b", approve=False)
    with pytest.raises(ApprovalMissing, match=f"release {manifest_b.release_id[:12]} has no approval"):
        promote_release(release_b, "dev", "prod", target, evidence)
    assert _prod_release_id(target) is None


def test_rejected_release_is_refused_with_the_reason(tmp_path, env):
    target, state, evidence = env
    release, manifest = _ready(tmp_path, target, state, "a", approve=False)
    state.decide("dev", manifest.release_id, approved=False, summary="latency regression")
    with pytest.raises(ApprovalMissing, match="was rejected in stage dev.*latency regression"):
        promote_release(release, "dev", "prod", target, evidence)
    with pytest.raises(ApprovalMissing, match="already rejected"):
        state.decide("dev", manifest.release_id, approved=True)


def test_wrong_direction_is_refused(tmp_path, env):
    target, state, evidence = env
    release, _ = _ready(tmp_path, target, state, "a")
    with pytest.raises(PromotionRefused, match="stage prod promotes to nothing"):
        promote_release(release, "prod", "dev", target, evidence)


def test_a_crash_at_any_git_step_leaves_old_or_new_and_rerun_converges(tmp_path, env, monkeypatch):
    target, state, evidence = env
    old_release, old = _ready(tmp_path, target, state, "old")
    promote_release(old_release, "dev", "prod", target, evidence)
    new_release, new = _ready(tmp_path, target, state, "new")

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
        assert _prod_release_id(target) in (old.release_id, new.release_id)
        promote_release(new_release, "dev", "prod", target, evidence)  # re-run converges
        assert _prod_release_id(target) == new.release_id
        rollback_stage(STAGES["prod"], old.release_id, target)

    history = envrepo.history(target.env_repo_url(STAGES["prod"]), limit=1000)
    # Every promote of "new" was followed by exactly one rollback: never two "new" commits in a row.
    ids = [d.release_id for d in history if d.release_id]
    assert all(a != b for a, b in zip(ids, ids[1:], strict=False))


def test_crash_just_before_push_leaves_prod_untouched(tmp_path, env):
    target, state, evidence = env
    release, _ = _ready(tmp_path, target, state, "a")

    def crash(_work: Path) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        promote_release(release, "dev", "prod", target, evidence, before_push=crash)
    assert _prod_release_id(target) is None


def test_concurrent_promotions_stay_linear_without_loss_or_duplicates(tmp_path, env):
    target, state, evidence = env
    releases = [_ready(tmp_path, target, state, m) for m in ("a", "b")]
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    first_attempt = threading.local()

    def hold(_work: Path) -> None:
        if not getattr(first_attempt, "done", False):
            first_attempt.done = True
            barrier.wait(timeout=30)  # everyone has committed locally: the first pushes race

    def run(release: Path) -> None:
        try:
            promote_release(release, "dev", "prod", target, evidence, before_push=hold)
        except BaseException as exc:  # noqa: BLE001 (collected for the assertion below)
            errors.append(exc)

    # Two promotions of "a" and two of "b", all at once.
    threads = [threading.Thread(target=run, args=(r,)) for r, _ in releases for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    work = envrepo.clone(target.env_repo_url(STAGES["prod"]), tmp_path / "check", depth=None)
    merges = envrepo.git("rev-list", "--merges", "HEAD", cwd=work).stdout.split()
    assert merges == []
    history = [d.release_id for d in envrepo.history(target.env_repo_url(STAGES["prod"])) if d.release_id]
    assert sorted(history) == sorted(m.release_id for _, m in releases)  # each exactly once


def test_a_users_global_gitignore_cannot_drop_release_files(tmp_path, env, monkeypatch):
    target, state, evidence = env
    ignore = tmp_path / "global-ignore"
    ignore.write_text("*.py\n*.json\n")
    config = tmp_path / "gitconfig"
    config.write_text(f"[core]\n\texcludesFile = {ignore}\n\tautocrlf = true\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    release, manifest = _ready(tmp_path, target, state, "a")
    work = envrepo.clone(target.env_repo_url(STAGES["dev"]), tmp_path / "dev-checkout")
    assert _tree(work / "release") == _tree(release)
