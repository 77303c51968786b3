"""Env repositories on their own: history, earlier releases, what a head holds, and pushes that fail.

Each test works on dev's seeded bare repository (promotion_env.make_env) through the module's
functions, as publish, promote and rollback call them, and checks what the repository holds after.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from promotion_env import STAGES, make_env, make_release

from gitops.errors import ReleaseError
from gitops.promotion import envrepo
from gitops.release.manifest import load_release

DEV = STAGES["dev"]


@pytest.fixture
def dev(tmp_path: Path) -> str:
    target, _state, _evidence = make_env(tmp_path)
    return target.env_repo_url(DEV)


def _publish(url: str, tmp_path: Path, marker: str, subject: str | None = None):
    release = tmp_path / f"release-{marker}"
    manifest = make_release(release, marker)
    return release, manifest, envrepo.push_release(url, release, subject or f"publish {marker}")


def test_history_lists_deployments_newest_first_with_their_release_and_subject(dev, tmp_path):
    _, a, _ = _publish(dev, tmp_path, "a")
    _, b, _ = _publish(dev, tmp_path, "b", subject="publish b: second")
    found = envrepo.history(dev)
    assert [(d.release_id, d.subject) for d in found[:2]] == [
        (b.release_id, "publish b: second"),
        (a.release_id, "publish a"),
    ]
    assert found[-1].release_id is None  # the seed commit carries no release
    assert len(found[0].commit) == 40 and found[0].date[:4].isdigit()
    assert [d.release_id for d in envrepo.history(dev, limit=1)] == [b.release_id]


def test_an_earlier_release_is_extracted_whole_by_its_id_prefix(dev, tmp_path):
    release_a, a, _ = _publish(dev, tmp_path, "a")
    _publish(dev, tmp_path, "b")
    out = envrepo.release_at(dev, a.release_id[:10], tmp_path / "restored")
    assert load_release(out).release_id == a.release_id
    assert (out / "stages/dev/templates/Base.template.json").read_bytes() == (
        release_a / "stages/dev/templates/Base.template.json"
    ).read_bytes()


def test_a_release_never_deployed_is_named_as_such(dev, tmp_path):
    _publish(dev, tmp_path, "a")
    with pytest.raises(envrepo.EnvRepoError) as missing:
        envrepo.release_at(dev, "0123456789ab", tmp_path / "restored")
    assert str(missing.value) == f"{dev}: no deployment of release 0123456789ab in this environment's history"
    assert not (tmp_path / "restored").exists()


def test_a_repository_that_cannot_be_cloned_is_named(tmp_path):
    url = str(tmp_path / "nowhere.git")
    with pytest.raises(envrepo.EnvRepoError, match=f"^{url}: cannot clone branch main: "):
        envrepo.clone(url, tmp_path / "work")


def test_a_fresh_repository_holds_no_release_and_copies_none(dev, tmp_path):
    head = envrepo.head_of(dev)
    assert (head.trailer, head.manifest, head.problem, head.release_id) == (None, None, None, None)
    assert envrepo.copy_head_release(dev, "dev", tmp_path / "copy") is None
    assert not (tmp_path / "copy").exists()
    with pytest.raises(envrepo.EnvRepoError) as none:
        envrepo.require_intact(dev, head, "dev")
    assert str(none.value) == "stage dev holds no release yet"
    assert none.value.hint == "`gitops publish` a release to it first"


def test_the_head_release_is_copied_every_byte(dev, tmp_path):
    _, a, _ = _publish(dev, tmp_path, "a")
    copied = envrepo.copy_head_release(dev, "dev", tmp_path / "copy")
    assert copied == tmp_path / "copy" and load_release(copied).release_id == a.release_id


def test_a_head_whose_tree_is_not_its_release_is_refused_naming_the_commit_to_revert(dev, tmp_path):
    _publish(dev, tmp_path, "a")
    work = envrepo.clone(dev, tmp_path / "editor")
    (work / "release" / "stages/dev/templates/Base.template.json").write_text("{}\n")
    envrepo.git(*envrepo.commit_identity(), "commit", "-q", "-am", "hand edit", cwd=work)
    envrepo.git("push", "-q", "origin", "HEAD:main", cwd=work)
    with pytest.raises(envrepo.TamperedEnvRepo) as tampered:
        envrepo.copy_head_release(dev, "dev", tmp_path / "copy")
    message = str(tampered.value)
    assert message.startswith("stage dev: release/stages/dev/templates/Base.template.json: content differs")
    head = envrepo.head_of(dev)
    assert tampered.value.hint == (
        f"restore the env repo to its last published commit: `git revert {head.commit[:10]}` in a clone of {dev}"
        " (or `gitops rollback` to a release of its history), then push; never edit release/ by hand"
    )
    assert not (tmp_path / "copy").exists()


def test_a_push_that_keeps_losing_gives_up_and_changes_nothing(dev, tmp_path):
    _, a, _ = _publish(dev, tmp_path, "a")
    release_b = tmp_path / "b"
    make_release(release_b, "b")
    rounds = []

    def someone_always_pushes_first(_work: Path) -> None:
        other = envrepo.clone(dev, tmp_path / f"other-{len(rounds)}")
        (other / f"note-{len(rounds)}.md").write_text("moved\n")
        envrepo.git("add", "-A", cwd=other)
        envrepo.git(*envrepo.commit_identity(), "commit", "-q", "-m", "note", cwd=other)
        envrepo.git("push", "-q", "origin", "HEAD:main", cwd=other)
        rounds.append(True)

    with pytest.raises(envrepo.EnvRepoError) as lost:
        envrepo.push_release(dev, release_b, "publish b", max_attempts=2, before_push=someone_always_pushes_first)
    assert str(lost.value) == f"{dev}: push kept losing races after 2 attempts; nothing was changed"
    assert len(rounds) == 2
    _, held = envrepo.current_release(dev)
    assert held is None  # the notes commit at the head names no release: b never landed


def test_a_push_that_fails_for_another_reason_is_not_retried(dev, tmp_path):
    release = tmp_path / "a"
    make_release(release, "a")
    attempts = []

    def remote_goes_away(work: Path) -> None:
        attempts.append(True)
        envrepo.git("remote", "set-url", "origin", str(tmp_path / "gone.git"), cwd=work)

    with pytest.raises(envrepo.EnvRepoError, match=f"^{dev}: push failed: ") as failed:
        envrepo.push_release(dev, release, "publish a", before_push=remote_goes_away)
    assert str(failed.value).count("\n") == 0 and len(attempts) == 1
    assert envrepo.head_of(dev).release_id is None


def test_a_push_result_says_what_moved(dev, tmp_path):
    release_a, a, first = _publish(dev, tmp_path, "a")
    assert (first.release_id, first.changed, first.attempts, first.previous_release_id) == (a.release_id, True, 1, None)
    assert first.commit == envrepo.head_of(dev).commit
    again = envrepo.push_release(dev, release_a, "publish a again")
    assert (again.changed, again.commit, again.previous_release_id) == (False, first.commit, a.release_id)
    _, b, second = _publish(dev, tmp_path, "b")
    assert second.previous_release_id == a.release_id


def test_the_commit_names_the_release_its_subject_and_trailers(dev, tmp_path, monkeypatch):
    monkeypatch.setenv("GITOPS_GIT_AUTHOR", "release-bot")
    release = tmp_path / "a"
    manifest = make_release(release, "a")
    envrepo.push_release(dev, release, "promote a", {"Approved-By": "reviewer"})
    work = envrepo.clone(dev, tmp_path / "check")
    message = envrepo.git("log", "-1", "--format=%B", cwd=work).stdout
    assert message.splitlines()[0] == "promote a"
    assert f"Release-Id: {manifest.release_id}" in message and "Approved-By: reviewer" in message
    assert envrepo.git("log", "-1", "--format=%an <%ae>", cwd=work).stdout.strip() == "release-bot <gitops@localhost>"


def test_a_repository_that_rewrites_files_on_commit_gets_no_push(dev, tmp_path):
    """An env repo's .gitattributes could make the committed blobs differ from the release (line
    endings normalised): what would be pushed is checked against the manifest, and nothing is."""
    work = envrepo.clone(dev, tmp_path / "editor")
    (work / ".gitattributes").write_text("* text\n")
    envrepo.git("add", ".gitattributes", cwd=work)
    envrepo.git(*envrepo.commit_identity(), "commit", "-q", "-m", "attributes", cwd=work)
    envrepo.git("push", "-q", "origin", "HEAD:main", cwd=work)
    before = envrepo.head_of(dev).commit
    release = tmp_path / "crlf"
    from release_builder import build_release

    from gitops.release.manifest import StageSummary

    build_release(
        release,
        {"assets/ab/step.py": b"print(1)\r\n"},
        {"dev": StageSummary(account=DEV.account, region=DEV.region, promote_to=None, stacks={}, pipelines={})},
    )
    with pytest.raises(envrepo.EnvRepoError) as refused:
        envrepo.push_release(dev, release, "publish crlf")
    assert str(refused.value) == "the commit's release/assets/ab/step.py differs from the release; nothing was pushed"
    assert envrepo.head_of(dev).commit == before


def test_git_calls_run_with_the_repositorys_credentials_only_inside_acting_as(tmp_path, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    show = ("-c", "alias.key=!printenv AWS_ACCESS_KEY_ID || echo none", "key")
    with envrepo.acting_as({"AWS_ACCESS_KEY_ID": "prod-role-key"}):
        assert envrepo.git(*show, cwd=tmp_path).stdout.strip() == "prod-role-key"
    assert envrepo.git(*show, cwd=tmp_path).stdout.strip() == "none"


def test_a_failing_git_call_says_which_and_why(tmp_path):
    with pytest.raises(envrepo.EnvRepoError, match=r"^git rev-parse failed: fatal: not a git repository"):
        envrepo.git("rev-parse", "HEAD", cwd=tmp_path)
    assert envrepo.git("rev-parse", "HEAD", cwd=tmp_path, check=False).returncode != 0


def test_without_git_the_error_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(envrepo.EnvRepoError, match="git is not installed"):
        envrepo.git("--version")


def test_a_release_changed_on_its_way_into_the_clone_is_not_committed(dev, tmp_path, monkeypatch):
    release = tmp_path / "a"
    make_release(release, "a")
    real_replace = envrepo._replace_release

    def copy_then_edit(work: Path, release_dir: Path) -> None:
        real_replace(work, release_dir)
        (work / "release" / "assets").joinpath("extra.txt").write_text("slipped in\n")

    monkeypatch.setattr(envrepo, "_replace_release", copy_then_edit)
    with pytest.raises(ReleaseError, match="file not listed in the manifest: assets/extra.txt"):
        envrepo.push_release(dev, release, "publish a")
    assert envrepo.head_of(dev).release_id is None
