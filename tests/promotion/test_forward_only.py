"""Promotion moves forward only, one winner per race, on approvals nobody can write by hand (issue 11)."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from promotion_env import STAGES, make_env, make_release, prod_release_id, ready

from gitops import machine
from gitops.promotion import envrepo
from gitops.promotion.approval import PendingApproval, _match
from gitops.promotion.envrepo import TamperedEnvRepo
from gitops.promotion.evidence import LocalEvidence
from gitops.promotion.promote import (
    PromotionLost,
    PromotionRefused,
    held_release,
    promote_release,
    publish_release,
    rollback_stage,
)
from gitops.promotion.state import ApprovalForged, ApprovalMissing

PROD = STAGES["prod"]
DEV = STAGES["dev"]


def _promote(release: Path, target, evidence, **kwargs):
    return promote_release(release, "dev", "prod", target, evidence, **kwargs)


def _prod_ids(target) -> list[str | None]:
    """Release ids of prod's history, oldest first."""
    return [d.release_id for d in reversed(envrepo.history(target.env_repo_url(PROD), limit=1000))]


# Forward only ------------------------------------------------------------------------------------


def test_promote_refuses_a_downgrade_and_names_rollback(tmp_path, env):
    target, state, evidence = env
    release_a, a = ready(tmp_path, target, state, "a")
    release_b, b = ready(tmp_path, target, state, "b")
    _promote(release_a, target, evidence)
    _promote(release_b, target, evidence)
    with pytest.raises(PromotionRefused) as refused:
        _promote(release_a, target, evidence)
    assert str(refused.value) == (
        f"release {a.short_id} is older than release {b.short_id} that prod holds (dev's order): promote only"
        " moves forward"
    )
    assert f"gitops rollback --stage prod --to {a.short_id}" in refused.value.hint
    assert prod_release_id(target) == b.release_id
    rollback_stage(PROD, a.release_id, target)  # the downgrade's own verb, which says it is one
    assert prod_release_id(target) == a.release_id


def test_a_release_superseded_in_dev_is_promoted_only_forward_and_the_result_says_so(tmp_path, env):
    target, state, evidence = env
    release_b, b = ready(tmp_path, target, state, "b")
    _, y = ready(tmp_path, target, state, "y", approve=False)  # dev moved on to Y, not approved
    result = _promote(release_b, target, evidence)
    assert result.changed and result.superseded_by == y.release_id
    head = held_release(DEV, target, tmp_path / "dev-head")  # the default: what dev holds now
    with pytest.raises(ApprovalMissing, match=f"release {y.short_id} has no approval in stage dev"):
        _promote(head, target, evidence)
    assert prod_release_id(target) == b.release_id


def test_a_release_rolled_back_to_in_dev_and_approved_again_is_forward(tmp_path, env):
    target, state, evidence = env
    release_a, a = ready(tmp_path, target, state, "a")
    release_b, _ = ready(tmp_path, target, state, "b")
    _promote(release_b, target, evidence)
    rollback_stage(DEV, a.release_id, target)  # dev goes back to A: a new commit, after B's
    assert _promote(release_a, target, evidence).changed
    assert prod_release_id(target) == a.release_id


def test_the_loser_of_a_race_fails_naming_the_winner(tmp_path, env):
    target, state, evidence = env
    release_a, a = ready(tmp_path, target, state, "a")
    release_b, b = ready(tmp_path, target, state, "b")
    raced = []

    def newer_lands_first(_work: Path) -> None:
        if not raced:  # A has committed on the head it read; B is pushed before A's push
            raced.append(_promote(release_b, target, evidence))

    with pytest.raises(PromotionLost) as lost:
        _promote(release_a, target, evidence, before_push=newer_lands_first)
    assert str(lost.value) == (
        f"lost the race: prod now holds release {b.short_id}, newer than {a.short_id} in dev's order, pushed by"
        f" another promotion; {a.short_id} was not promoted"
    )
    assert prod_release_id(target) == b.release_id
    assert a.release_id not in _prod_ids(target)


def test_the_push_is_a_compare_and_swap_on_the_head_read(tmp_path, env):
    """A commit that lands between the read and the push is kept: the stale push is refused, then retried."""
    target, state, evidence = env
    release, manifest = ready(tmp_path, target, state, "a")
    url = target.env_repo_url(PROD)
    moved = []

    def someone_pushes(_work: Path) -> None:
        if moved:
            return
        other = envrepo.clone(url, tmp_path / "other")
        (other / "NOTES.md").write_text("a change pushed while the promotion ran\n")
        envrepo.git("add", "NOTES.md", cwd=other)
        envrepo.git(*envrepo.commit_identity(), "commit", "-q", "-m", "notes", cwd=other)
        envrepo.git("push", "-q", "origin", "HEAD:refs/heads/main", cwd=other)
        moved.append(envrepo.git("rev-parse", "HEAD", cwd=other).stdout.strip())

    pushed = envrepo.push_release(url, release, "promote", before_push=someone_pushes)
    assert pushed.attempts == 2
    check = envrepo.clone(url, tmp_path / "check", depth=None)
    parents = envrepo.git("rev-list", "--first-parent", "HEAD", cwd=check).stdout.split()
    assert parents[1] == moved[0]  # built on the commit that landed, not over it
    assert (check / "NOTES.md").exists() and prod_release_id(target) == manifest.release_id


def test_a_stale_writer_is_refused_and_no_release_is_lost(tmp_path, env):
    """Rule: a push lands only on the head it was made from. The stale writer read dev's old head and
    committed A on it; writer B then published in full. A's push must be refused (a forced push would
    drop B from dev's history), then A goes on top of B on its retry: both releases stay deployed."""
    target, _state, _evidence = env
    url = target.env_repo_url(DEV)
    release_a, release_b = tmp_path / "a", tmp_path / "b"
    a, b = make_release(release_a, "a"), make_release(release_b, "b")
    won: list[envrepo.PushResult] = []

    def the_other_writer_wins(work: Path) -> None:
        if not won:  # A has committed on the head it read; B is pushed in full before A's push
            won.append(envrepo.push_release(url, release_b, "publish b"))

    stale = envrepo.push_release(url, release_a, "publish a", before_push=the_other_writer_wins)
    assert won[0].changed and won[0].attempts == 1
    assert stale.attempts == 2, "the stale push was accepted: it was made on a head that had moved"
    assert stale.previous_release_id == b.release_id  # the retry decided again, on B's head
    deployed = [d.release_id for d in envrepo.history(url)]
    assert deployed[:2] == [a.release_id, b.release_id], f"dev's history lost a release: {deployed}"
    check = envrepo.clone(url, tmp_path / "check", depth=None)
    parents = envrepo.git("rev-list", "--first-parent", "HEAD", cwd=check).stdout.split()
    assert parents[:2] == [stale.commit, won[0].commit]


def test_a_stale_writer_whose_guard_refuses_the_new_head_leaves_it_in_place(tmp_path, env):
    """Rule: after a lost race the guard decides again on the head that won; a refusal moves nothing."""
    target, _state, _evidence = env
    url = target.env_repo_url(DEV)
    release_a, release_b = tmp_path / "a", tmp_path / "b"
    make_release(release_a, "a")
    b = make_release(release_b, "b")
    heads_seen: list[str | None] = []

    def only_onto_an_empty_stage(head: envrepo.Head) -> None:
        heads_seen.append(head.release_id)
        if head.release_id is not None:
            raise envrepo.PushRefused(f"dev holds {head.release_id[:12]} now; not overwritten")

    def the_other_writer_wins(work: Path) -> None:
        envrepo.push_release(url, release_b, "publish b")

    with pytest.raises(envrepo.PushRefused, match=f"dev holds {b.short_id} now; not overwritten"):
        envrepo.push_release(
            url, release_a, "publish a", guard=only_onto_an_empty_stage, before_push=the_other_writer_wins
        )
    assert heads_seen == [None, b.release_id]
    _, held = envrepo.current_release(url)
    assert held is not None and held.release_id == b.release_id


def _race_one(release: str, local: str, barrier, results) -> None:
    """One promoter process: commit, wait until all 8 have committed, push (the race), report."""
    from gitops.promotion.evidence import LocalEvidence as Evidence
    from gitops.promotion.state import LocalState
    from gitops.target import Target

    target = Target("local", Path(local), "http://127.0.0.1:1")
    waited = []

    def hold(_work: Path) -> None:
        if not waited:
            waited.append(True)
            barrier.wait(timeout=120)

    try:
        moved = promote_release(
            Path(release), "dev", "prod", target, Evidence(LocalState(Path(local))), before_push=hold
        )
        results.put((release, "ok", moved.changed, moved.previous_release_id, moved.commit))
    except PromotionLost as exc:
        results.put((release, "lost", str(exc), None, None))
    except BaseException as exc:  # noqa: BLE001 (reported to the parent, which fails the test)
        results.put((release, "error", f"{type(exc).__name__}: {exc}", None, None))


@pytest.mark.slow
def test_eight_promoters_of_two_releases_end_on_the_newer_one_five_rounds_out_of_five(tmp_path):
    target, state, evidence = make_env(tmp_path)
    release_0, r0 = ready(tmp_path, target, state, "zero")
    _promote(release_0, target, evidence)
    release_a, a = ready(tmp_path, target, state, "a")
    release_b, b = ready(tmp_path, target, state, "b")  # published after A: newer in dev's order
    context = multiprocessing.get_context("fork")
    outcomes = []
    for _round in range(5):
        barrier = context.Barrier(8)
        results = context.Queue()
        procs = [
            context.Process(target=_race_one, args=(str(r), str(target.local_dir), barrier, results))
            for r in [release_a] * 4 + [release_b] * 4
        ]
        for proc in procs:
            proc.start()
        got = [results.get(timeout=300) for _ in procs]
        for proc in procs:
            proc.join(timeout=60)
        assert [r for r in got if r[1] == "error"] == []
        assert prod_release_id(target) == b.release_id
        assert all(r[1] == "ok" for r in got if r[0] == str(release_b))
        losers = [r for r in got if r[1] == "lost"]
        assert all(r[0] == str(release_a) and f"now holds release {b.short_id}" in r[2] for r in losers)
        # "was X" is what the head the commit landed on held: that commit's parent's release.
        check = envrepo.clone(target.env_repo_url(PROD), tmp_path / f"check-{_round}", depth=None)
        for _release, _, changed, previous, commit in (r for r in got if r[1] == "ok"):
            if changed:
                parent = envrepo.git(
                    "log", "-1", "--format=%(trailers:key=Release-Id,valueonly)", f"{commit}~1", cwd=check
                )
                assert parent.stdout.strip() == previous
        ids = _prod_ids(target)
        since = ids[len(ids) - 1 - ids[::-1].index(r0.release_id) :]  # this round's moves
        assert since[-1] == b.release_id and a.release_id not in since[since.index(b.release_id) :]
        assert envrepo.git("rev-list", "--merges", "HEAD", cwd=check).stdout == ""
        outcomes.append(len(losers))
        rollback_stage(PROD, r0.release_id, target)
    print(f"race rounds: A promoters that lost, per round: {outcomes}")


# The kill -9 fault test ------------------------------------------------------------------------

_SHIM = """#!/bin/sh
n=$(( $(cat "$GITOPS_TEST_COUNT") + 1 )); echo "$n" > "$GITOPS_TEST_COUNT"
if [ "$n" = "$GITOPS_TEST_KILL_BEFORE" ]; then kill -9 "$PPID"; exit 137; fi
"$GITOPS_TEST_REAL_GIT" "$@"; rc=$?
if [ "$n" = "$GITOPS_TEST_KILL_AFTER" ]; then kill -9 "$PPID"; fi
exit $rc
"""

_PROMOTE = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from gitops.promotion.evidence import LocalEvidence
    from gitops.promotion.promote import promote_release
    from gitops.promotion.state import LocalState
    from gitops.target import Target
    local = Path(sys.argv[2])
    target = Target("local", local, "http://127.0.0.1:1")
    promote_release(Path(sys.argv[1]), "dev", "prod", target, LocalEvidence(LocalState(local)))
    """
)


@pytest.mark.slow
def test_kill_9_at_every_git_step_of_promote_leaves_old_or_new_in_full_and_no_scratch(tmp_path):
    target, state, evidence = make_env(tmp_path)
    old_release, old = ready(tmp_path, target, state, "old")
    _promote(old_release, target, evidence)
    new_release, new = ready(tmp_path, target, state, "new")
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "git").write_text(_SHIM)
    (shim / "git").chmod(0o755)
    count = tmp_path / "count"

    def run(kill_before: int = 0, kill_after: int = 0) -> int:
        count.write_text("0")
        env = os.environ | {
            "PATH": f"{shim}{os.pathsep}{os.environ['PATH']}",
            "GITOPS_TEST_COUNT": str(count),
            "GITOPS_TEST_REAL_GIT": subprocess.run(["which", "git"], capture_output=True, text=True).stdout.strip(),
            "GITOPS_TEST_KILL_BEFORE": str(kill_before),
            "GITOPS_TEST_KILL_AFTER": str(kill_after),
        }
        done = subprocess.run(
            [sys.executable, "-c", _PROMOTE, str(new_release), str(target.local_dir)], env=env, capture_output=True
        )
        return done.returncode

    assert run() == 0  # learn how many git calls one promote makes
    calls = int(count.read_text())
    rollback_stage(PROD, old.release_id, target)
    points = [(k, 0) for k in range(1, calls + 1)] + [(0, k) for k in range(1, calls + 1)]
    assert len(points) >= 20
    work = machine.state_dir() / machine.WORK_DIR
    for before, after in points:
        code = run(before, after)
        assert code == -9, (before, after, code)  # it was killed there, not finished or failed
        head = envrepo.head_of(target.env_repo_url(PROD))
        assert head.problem is None and head.release_id in (old.release_id, new.release_id), (before, after)
        _promote(new_release, target, evidence)  # a re-run converges, and clears the killed run's scratch
        assert prod_release_id(target) == new.release_id
        assert [p.name for p in work.iterdir() if not p.name.startswith(f"{os.getpid()}-")] == []
        rollback_stage(PROD, old.release_id, target)
    ids = [i for i in _prod_ids(target) if i]
    assert all(x != y for x, y in zip(ids, ids[1:], strict=False))  # never the same release twice in a row
    print(f"kill -9 points in promote: {len(points)} ({calls} git calls, before and after each)")


def test_the_next_run_removes_scratch_directories_of_dead_processes(tmp_path, monkeypatch):
    monkeypatch.setenv(machine.STATE_DIR_ENV, str(tmp_path / "state"))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = tmp_path / "state" / machine.WORK_DIR / f"{dead.stdout.strip()}-push-x"
    (leftover / "repo").mkdir(parents=True)
    with machine.scratch("env") as fresh:
        assert fresh.is_dir() and not leftover.exists()
    assert not fresh.exists()


# Approvals nobody can write by hand ------------------------------------------------------------


def test_a_forged_approval_file_promotes_nothing(tmp_path, env):
    target, state, evidence = env
    release, manifest = ready(tmp_path, target, state, "a", approve=False)
    path = state.dir / "approvals" / "dev" / f"{manifest.release_id}.json"
    path.write_text(
        json.dumps(
            {
                "stage": "dev",
                "release_id": manifest.release_id,
                "status": "approved",
                "requested_at": "2026-12-01T00:00:00Z",
                "decided_by": "forger",
            }
        )
    )
    with pytest.raises(ApprovalForged, match=rf"{path}: not signed by this machine's engine"):
        _promote(release, target, evidence)
    assert prod_release_id(target) is None


def test_an_edited_waiting_approval_keeps_its_mac_and_counts_for_nothing(tmp_path, env):
    target, state, evidence = env
    release, manifest = ready(tmp_path, target, state, "a", approve=False)
    path = state.dir / "approvals" / "dev" / f"{manifest.release_id}.json"
    record = json.loads(path.read_text())
    record.update(status="approved", decided_by="forger")
    path.write_text(json.dumps(record))
    with pytest.raises(ApprovalForged, match="edited or written by hand"):
        _promote(release, target, evidence)
    assert state.waiting() == []  # a listing leaves it out; the runner's next request replaces it
    assert state.request_approval("dev", manifest.release_id).status == "waiting"


def test_an_approval_copied_onto_another_release_counts_for_nothing(tmp_path, env):
    target, state, evidence = env
    _, a = ready(tmp_path, target, state, "a")
    release_b, b = ready(tmp_path, target, state, "b", approve=False)
    approvals = state.dir / "approvals" / "dev"
    (approvals / f"{b.release_id}.json").write_bytes((approvals / f"{a.release_id}.json").read_bytes())
    with pytest.raises(ApprovalForged, match="for another release"):
        _promote(release_b, target, evidence)


def test_a_forged_verification_promotes_nothing(tmp_path, env):
    target, state, evidence = env
    release = tmp_path / "r"
    manifest = make_release(release, "x")
    publish_release(release, "dev", target)
    path = state.dir / "verified" / "dev" / f"{manifest.release_id}.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"stage": "dev", "release_id": manifest.release_id, "at": "now"}))
    with pytest.raises(ApprovalForged, match="not signed by this machine's engine"):
        _promote(release, target, evidence)


def test_inside_a_pipeline_execution_only_that_executions_approval_counts(tmp_path, env):
    target, state, _ = env
    release = tmp_path / "r"
    manifest = make_release(release, "x")
    publish_release(release, "dev", target)
    state.record_verified("dev", manifest.release_id, execution_id="exec-2")
    state.request_approval("dev", manifest.release_id, execution_id="exec-1")
    state.decide("dev", manifest.release_id, approved=True)
    with pytest.raises(ApprovalMissing, match="approved in stage dev by execution exec-1, not by this execution"):
        _promote(release, target, LocalEvidence(state, "exec-2"))
    state.request_approval("dev", manifest.release_id, execution_id="exec-2")  # this execution asks anew
    state.decide("dev", manifest.release_id, approved=True)
    result = _promote(release, target, LocalEvidence(state, "exec-2"))
    work = envrepo.clone(target.env_repo_url(PROD), tmp_path / "prod")
    assert result.changed and "Approval-Execution: exec-2" in envrepo.git("log", "-1", "--format=%B", cwd=work).stdout


# The env repo's head ---------------------------------------------------------------------------


def test_a_head_commit_without_its_own_release_trailer_holds_no_release(tmp_path, env):
    target, state, evidence = env
    ready(tmp_path, target, state, "a")
    url = target.env_repo_url(DEV)
    work = envrepo.clone(url, tmp_path / "dev")
    (work / "NOTES.md").write_text("hand-made commit\n")
    envrepo.git("add", "NOTES.md", cwd=work)
    envrepo.git(*envrepo.commit_identity(), "commit", "-q", "-m", "notes", cwd=work)
    envrepo.git("push", "-q", "origin", "HEAD:refs/heads/main", cwd=work)
    head = envrepo.git("rev-parse", "--short=10", "HEAD", cwd=work).stdout.strip()
    with pytest.raises(TamperedEnvRepo, match=f"stage dev: head commit {head} names no release") as refused:
        held_release(DEV, target, tmp_path / "held")
    assert f"git revert {head}" in refused.value.hint


# What the approver is told ---------------------------------------------------------------------


def _pending(*ids: str) -> list[PendingApproval]:
    return [PendingApproval("dev", i, None, None) for i in ids]


def test_approve_says_which_waiting_releases_an_ambiguous_prefix_matches():
    with pytest.raises(ApprovalMissing, match="--release abcdef0 matches several waiting releases"):
        _match(_pending("abcdef0" + "1" * 57, "abcdef0" + "2" * 57), "abcdef0", "dev")


def test_approve_of_an_unknown_prefix_names_what_is_waiting():
    with pytest.raises(ApprovalMissing, match="release 1234567 is not waiting .* stage dev; waiting: abcdef011111"):
        _match(_pending("abcdef0" + "1" * 57), "1234567", "dev")
    with pytest.raises(ApprovalMissing, match="not waiting for approval in stage dev; nothing is waiting there"):
        _match([], "1234567", "dev")


def test_approve_of_a_decided_release_says_who_decided_it(tmp_path, env):
    target, state, _ = env
    _, manifest = ready(tmp_path, target, state, "a")
    with pytest.raises(
        ApprovalMissing, match=rf"release {manifest.short_id} is not waiting in stage dev: it was approved by"
    ):
        _match([], manifest.release_id[:9], "dev", state.approvals("dev"))
