"""Render's refusals that come before any synthesis: what --out may replace (fast; no CDK, no SDK)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from release_builder import build_release

from gitops.errors import GitopsError
from gitops.release.manifest import StageSummary
from gitops.release.render import check_out_dir, render_release

ROOT = Path(__file__).resolve().parents[2]


def tree(path: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and directory (None) under path."""
    return {p.relative_to(path).as_posix(): p.read_bytes() if p.is_file() else None for p in sorted(path.rglob("*"))}


def a_release(out: Path) -> Path:
    files = {"stages/dev/config.json": b"{}\n", "assets/abc/step.py": b"print()\n"}
    stage = StageSummary(account="111111111111", region="eu-west-1", promote_to=None, stacks={}, pipelines={})
    build_release(out, files, {"dev": stage}, engine_wheel="assets/abc/x.whl", scanned=False)
    return out


def test_render_keeps_a_directory_that_holds_another_manifest(tmp_path: Path, checkout_copy):
    # Found: it deleted background.js and icons/ because the directory held *a* manifest.json.
    root = checkout_copy(tmp_path / "checkout", with_render_cache=False)
    ext = tmp_path / "extension"
    (ext / "icons").mkdir(parents=True)
    (ext / "manifest.json").write_text(json.dumps({"manifest_version": 3, "name": "An extension"}))
    (ext / "background.js").write_text("console.log('hi');\n")
    (ext / "icons" / "icon.png").write_bytes(b"\x89PNG")
    before = tree(ext)
    with pytest.raises(GitopsError) as info:
        render_release(root, ext)
    assert str(info.value) == (
        f"--out {ext}: not a release (its manifest.json is not a gitops release manifest); refusing to replace it"
    )
    assert "release_id" in info.value.detail  # why it is not ours, after the line
    assert tree(ext) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkout", "extension"]  # no .extension.tmp-*


def test_a_release_may_be_replaced_even_when_stale_or_incomplete(tmp_path: Path):
    release = a_release(tmp_path / "release")
    check_out_dir(ROOT, release)
    (release / "assets/abc/step.py").write_text("edited\n")  # stale content: it is being replaced
    (release / "stages/dev/config.json").unlink()  # a listed file missing: same
    check_out_dir(ROOT, release)
    check_out_dir(ROOT, tmp_path / "new")  # does not exist yet
    (tmp_path / "empty").mkdir()
    check_out_dir(ROOT, tmp_path / "empty")


@pytest.mark.parametrize(
    ("extra", "named"),
    [("assets/abc/notes.txt", "assets/abc/notes.txt"), ("icons/", "icons/"), ("assets/keep/", "assets/keep/")],
    ids=["unlisted-file", "unlisted-empty-dir", "unlisted-dir-beside-assets"],
)
def test_a_release_holding_anything_its_manifest_does_not_list_is_refused(tmp_path: Path, extra: str, named: str):
    release = a_release(tmp_path / "release")
    path = release / extra
    if extra.endswith("/"):
        path.mkdir(parents=True)
    else:
        path.write_text("mine\n")
    before = tree(release)
    with pytest.raises(GitopsError) as info:
        check_out_dir(ROOT, release)
    assert str(info.value) == (
        f"--out {release}: holds {named}, which its manifest.json does not list; refusing to replace it"
    )
    assert tree(release) == before


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: p.write_text("x"), "exists and is not a directory"),
        (lambda p: (p.mkdir(), (p / "notes.md").write_text("x")), "not a release (no manifest.json)"),
        (lambda p: (p.mkdir(), (p / "manifest.json").write_text("{nope")), "its manifest.json is not a gitops"),
    ],
    ids=["a-file", "no-manifest", "manifest-not-json"],
)
def test_other_directories_are_refused(tmp_path: Path, make, expected: str):
    out = tmp_path / "out"
    make(out)
    with pytest.raises(GitopsError, match=re.escape(expected)):
        check_out_dir(ROOT, out)


def test_the_repository_itself_is_refused():
    with pytest.raises(GitopsError, match="is the repository"):
        check_out_dir(ROOT, ROOT)
    with pytest.raises(GitopsError, match="is the repository"):
        check_out_dir(ROOT, ROOT.parent)


def test_every_input_a_cached_part_is_keyed_on_exists():
    # A moved module left out of its part's inputs would let a cached part outlive a change to it.
    from gitops.release.render import ENGINE_INPUTS, INFRA_INPUTS, PIPELINE_INPUTS

    missing = [p for p in (*ENGINE_INPUTS, *INFRA_INPUTS, *PIPELINE_INPUTS) if not (ROOT / p).exists()]
    assert missing == []
