"""The release format: content-addressed id, full verification on load, and never a partial write."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from gitops.errors import ReleaseError
from gitops.release.assets import deterministic_tar_gz, deterministic_zip, sha256_bytes
from gitops.release.manifest import (
    MANIFEST,
    TAMPER_HINT,
    ReleaseManifest,
    compute_release_id,
    load_release,
    seal_manifest,
    write_release_dir,
)


def _manifest(files: dict[str, bytes]) -> ReleaseManifest:
    return seal_manifest(files, stages={}, engine_wheel="assets/x/engine.whl")


FILES = {"stages/dev/templates/Base.template.json": b"{}\n", "assets/ab/step.py": b"print(1)\n"}


def test_release_id_depends_on_paths_contents_and_every_other_manifest_field():
    a = _manifest({"x": b"1", "y": b"2"})
    assert a.release_id == _manifest({"y": b"2", "x": b"1"}).release_id == compute_release_id(a)
    assert a.release_id != _manifest({"x": b"1", "y": b"3"}).release_id
    assert a.release_id != _manifest({"x": b"1", "z": b"2"}).release_id
    for field, value in [("source_commit", "abc"), ("tool_versions", {"cfn-lint": "0"}), ("engine_wheel", "w.whl")]:
        assert compute_release_id(a.model_copy(update={field: value})) != a.release_id, field
    assert compute_release_id(a.model_copy(update={"release_id": "anything"})) == a.release_id


def test_write_then_load_roundtrip(tmp_path: Path):
    out = tmp_path / "release"
    manifest = _manifest(FILES)
    write_release_dir(out, FILES, manifest)
    assert load_release(out).release_id == manifest.release_id
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release"]  # no temp dirs left


def test_tampered_file_is_detected(tmp_path: Path):
    out = tmp_path / "release"
    write_release_dir(out, FILES, _manifest(FILES))
    (out / "assets/ab/step.py").write_text("print(2)\n")
    with pytest.raises(ReleaseError, match="step.py: content differs") as refused:
        load_release(out)
    assert refused.value.hint == TAMPER_HINT


def test_extra_and_missing_files_are_detected(tmp_path: Path):
    out = tmp_path / "release"
    write_release_dir(out, FILES, _manifest(FILES))
    (out / "assets/ab/extra.py").write_text("x")
    with pytest.raises(ReleaseError, match="not listed in the manifest: assets/ab/extra.py") as extra:
        load_release(out)
    assert extra.value.hint == TAMPER_HINT
    (out / "assets/ab/extra.py").unlink()
    (out / "assets/ab/step.py").unlink()
    with pytest.raises(ReleaseError, match="missing: assets/ab/step.py") as missing:
        load_release(out)
    assert missing.value.hint == TAMPER_HINT


def _relist(out: Path, change: Callable[[Path, dict[str, str]], None]) -> bytes:
    """Change the release's files and list them again with true digests, keeping the old release_id."""
    doc = json.loads((out / MANIFEST).read_text())
    change(out, doc["files"])
    (out / MANIFEST).write_text(json.dumps(doc, sort_keys=True, indent=2) + "\n")
    return (out / MANIFEST).read_bytes()


def _slip_in(out: Path, files: dict[str, str]) -> None:
    (out / "assets/cd/backdoor.py").parent.mkdir(parents=True)
    (out / "assets/cd/backdoor.py").write_bytes(b"import os\n")
    files["assets/cd/backdoor.py"] = sha256_bytes(b"import os\n")


def _take_out(out: Path, files: dict[str, str]) -> None:
    (out / "assets/ab/step.py").unlink()
    del files["assets/ab/step.py"]


def _swap(out: Path, files: dict[str, str]) -> None:
    (out / "assets/ab/step.py").write_bytes(b"print('swapped')\n")
    files["assets/ab/step.py"] = sha256_bytes(b"print('swapped')\n")


@pytest.mark.parametrize("change", [_slip_in, _take_out, _swap], ids=["file added", "file removed", "file swapped"])
def test_the_release_id_must_match_the_files_it_lists(tmp_path: Path, change):
    """Rule: the id is the digest of the files listed. Every file here hashes as listed and none is
    missing or extra, so only the id check is left to refuse a release whose listing was rewritten."""
    out = tmp_path / "release"
    sealed = _manifest(FILES)
    write_release_dir(out, FILES, sealed)
    relisted = _relist(out, change)
    with pytest.raises(ReleaseError) as refused:
        load_release(out)
    assert str(refused.value) == (
        f"{out / MANIFEST}: release_id {sealed.short_id} does not match the manifest's content"
        " (a field was edited after render)"
    )
    assert refused.value.hint == TAMPER_HINT
    assert (out / MANIFEST).read_bytes() == relisted  # refused, not mended: the evidence stays as found


def test_failed_write_keeps_the_previous_release(tmp_path: Path):
    out = tmp_path / "release"
    write_release_dir(out, FILES, _manifest(FILES))
    before = load_release(out).release_id
    bad = dict(FILES) | {"assets/cd/new.py": b"new"}
    manifest = _manifest(FILES)  # lies: does not list new.py, so verification fails before the swap
    with pytest.raises(ReleaseError):
        write_release_dir(out, bad, manifest)
    assert load_release(out).release_id == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release"]


def test_archives_are_reproducible(tmp_path: Path):
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "a.py").write_text("a = 1\n")
    (src / "b.txt").write_text("b\n")
    first_tar, first_zip = deterministic_tar_gz(src), deterministic_zip(src)
    # Touch the files: mtimes change, contents do not.
    for path in src.rglob("*"):
        if path.is_file():
            path.write_text(path.read_text())
    (src / "pkg" / "__pycache__").mkdir()
    (src / "pkg" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"junk")
    assert deterministic_tar_gz(src) == first_tar
    assert deterministic_zip(src) == first_zip


@pytest.mark.parametrize("target", ["src-like", "repo-root"])
def test_render_never_replaces_a_directory_that_is_not_a_release(tmp_path: Path, target: str):
    from gitops.errors import GitopsError
    from gitops.release.render import render_release

    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "guide.md").write_text("keep me\n")
    out = root / "docs" if target == "src-like" else root
    with pytest.raises(GitopsError, match="--out"):
        render_release(root, out)
    assert (root / "docs" / "guide.md").read_text() == "keep me\n"


def test_a_failed_swap_puts_the_previous_release_back_and_leaves_no_temporary_directory(tmp_path: Path, monkeypatch):
    """Rule: never a partial release. The new one is written and verified aside; if moving it into
    place fails after the old one was moved away, the old one is moved back."""
    import os

    out = tmp_path / "nested" / "release"
    write_release_dir(out, FILES, _manifest(FILES))
    before = load_release(out).release_id
    newer = dict(FILES) | {"assets/cd/new.py": b"new\n"}
    real_rename = os.rename

    def fail_into_place(src, dst):
        if Path(src).name.startswith(".release.tmp-"):  # the verified new release, into place
            raise OSError(28, "No space left on device")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", fail_into_place)
    with pytest.raises(OSError, match="No space left"):
        write_release_dir(out, newer, _manifest(newer))
    monkeypatch.undo()
    assert load_release(out).release_id == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["release"]


def test_a_release_is_replaced_whole_by_a_newer_one(tmp_path: Path):
    out = tmp_path / "release"
    write_release_dir(out, FILES, _manifest(FILES))
    newer = {"stages/dev/templates/Base.template.json": b'{"Resources": {}}\n', "assets/cd/new.py": b"new\n"}
    write_release_dir(out, newer, _manifest(newer))
    assert load_release(out).release_id == _manifest(newer).release_id
    assert not (out / "assets/ab/step.py").exists()  # nothing of the old release is left inside
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release"]


def test_a_relative_out_directory_is_written_where_it_names(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_release_dir(Path("out/nested/release"), FILES, _manifest(FILES))
    assert load_release(tmp_path / "out" / "nested" / "release").release_id == _manifest(FILES).release_id
    assert sorted(p.name for p in (tmp_path / "out" / "nested").iterdir()) == ["release"]


def test_a_failed_first_write_says_why_and_leaves_nothing(tmp_path: Path):
    out = tmp_path / "release"
    lying = _manifest(FILES).model_copy(update={"files": {}})  # lists none of the files it comes with
    with pytest.raises(ReleaseError, match="file not listed in the manifest"):
        write_release_dir(out, FILES, lying)
    assert list(tmp_path.iterdir()) == []


def test_leftovers_of_an_interrupted_write_are_not_taken_into_the_release(tmp_path: Path):
    import os

    out = tmp_path / "release"
    leftover = tmp_path / f".release.tmp-{os.getpid()}"
    (leftover / "assets").mkdir(parents=True)
    (leftover / "assets" / "half-written.py").write_text("x")
    write_release_dir(out, FILES, _manifest(FILES))
    assert load_release(out).files == _manifest(FILES).files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release"]


def test_the_release_id_is_the_documented_digest_anyone_can_recompute(tmp_path: Path):
    """docs/design.md §3: sha256 over the sorted (path, sha256) lines of every file, then the
    manifest's own line: the sha256 of its canonical JSON (sorted keys, no spaces) without the id.
    A verifier outside this engine recomputes it from manifest.json alone."""
    import hashlib
    import json

    out = tmp_path / "release"
    write_release_dir(out, FILES, _manifest(FILES))
    doc = json.loads((out / MANIFEST).read_text())
    claimed = doc.pop("release_id")
    body = hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    lines = [f"{path}\0{sha}\n" for path, sha in sorted(doc["files"].items())] + [f"{MANIFEST}\0{body}\n"]
    assert hashlib.sha256("".join(lines).encode()).hexdigest() == claimed


def test_manifest_json_is_the_same_bytes_whatever_order_the_release_was_assembled_in(tmp_path: Path):
    """Re-rendering the same release writes the same manifest.json, so an env repo sees no change."""
    from gitops.release.manifest import StageSummary, manifest_bytes

    def stage(account: str) -> StageSummary:
        return StageSummary(account=account, region="eu-west-1", promote_to=None, stacks={}, pipelines={})

    one = seal_manifest(FILES, stages={"dev": stage("1"), "prod": stage("2")}, engine_wheel="w.whl")
    other = seal_manifest(
        dict(reversed(FILES.items())), stages={"prod": stage("2"), "dev": stage("1")}, engine_wheel="w.whl"
    )
    assert manifest_bytes(one) == manifest_bytes(other)
    assert manifest_bytes(one).endswith(b"}\n") and b'\n  "engine_wheel": "w.whl",\n' in manifest_bytes(one)


def test_the_source_commit_and_requirement_files_are_recorded_in_the_manifest():
    sealed = seal_manifest(
        FILES, stages={}, engine_wheel="w.whl", source_commit="1" * 40, requirements={"engine": "assets/ab/step.py"}
    )
    assert sealed.source_commit == "1" * 40
    assert sealed.requirements == {"engine": "assets/ab/step.py"}


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (lambda out: (out / MANIFEST).unlink(), "{out}: not a release (no manifest.json)"),
        (
            lambda out: (out / MANIFEST).write_text('{"release_id": "x"}'),
            "{out}/manifest.json: invalid manifest: field 'source_commit': Field required",
        ),
        (
            lambda out: (out / MANIFEST).write_text(
                (out / MANIFEST).read_text().replace('"files": {', '"files": {"x": 1, ', 1)
            ),
            "{out}/manifest.json: invalid manifest: field 'files.x': Input should be a valid string",
        ),
        (
            lambda out: ((out / MANIFEST).unlink(), (out / MANIFEST).mkdir()),
            "{out}/manifest.json: cannot be read: Is a directory",
        ),
    ],
    ids=["missing", "field missing", "field of the wrong type", "unreadable"],
)
def test_a_manifest_that_cannot_be_read_is_refused_naming_the_file_and_field(tmp_path: Path, break_it, message):
    out = tmp_path / "release"
    write_release_dir(out, FILES, _manifest(FILES))
    break_it(out)
    with pytest.raises(ReleaseError) as refused:
        load_release(out)
    assert str(refused.value) == message.format(out=out)
