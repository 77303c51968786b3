"""The one builder of hand-made releases: seal the files, write the directory, record the scan verdict.

Tests that need a release without rendering the repository (deploy, diff, promotion) compose their
files and stage summaries and hand them here, so every hand-made release is sealed and attested
the way `gitops render` and `gitops scan` would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from release_attestation import attest_scanned

from gitops.release.manifest import ReleaseManifest, StackSummary, StageSummary, seal_manifest, write_release_dir


def stack_summary(stack_name: str, template: dict) -> StackSummary:
    """The manifest's summary of one stack, counted from its template as render counts it."""
    types: dict[str, int] = {}
    for resource in template.get("Resources", {}).values():
        types[resource["Type"]] = types.get(resource["Type"], 0) + 1
    return StackSummary(stack_name=stack_name, resources=sum(types.values()), resource_types=types)


def build_release(
    out: Path,
    files: dict[str, bytes],
    stages: dict[str, StageSummary],
    *,
    engine_wheel: str = "assets/none/engine.whl",
    scanned: bool = True,
    scan_passed: bool = True,
    **seal: Any,
) -> ReleaseManifest:
    """Seal `files` into a release at `out`; attest its scan (passed or failed) unless scanned=False.

    `seal` passes on to seal_manifest (source_commit, tool_versions).
    """
    # Every release carries the model pin render writes (model: null unless the test pins one).
    files = {"model.json": b'{\n  "model": null,\n  "sample": null\n}\n', **files}
    manifest = seal_manifest(files, stages=stages, engine_wheel=engine_wheel, **seal)
    write_release_dir(out, files, manifest)
    if scanned:
        attest_scanned(out, passed=scan_passed)
    return manifest


def repin_release(src: Path, out: Path, model_json: bytes) -> ReleaseManifest:
    """A copy of the release at `src` with another model.json, sealed and attested: what render makes of a new pin."""
    from gitops.release.manifest import read_manifest

    manifest = read_manifest(src)
    files = {rel: (src / rel).read_bytes() for rel in manifest.files}
    files["model.json"] = model_json
    return build_release(
        out,
        files,
        manifest.stages,
        engine_wheel=manifest.engine_wheel,
        source_commit=manifest.source_commit,
        tool_versions=manifest.tool_versions,
        requirements=manifest.requirements,
    )
