"""`gitops report`: the release page, one static HTML file a reviewer or approver opens."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gitops.cli import JsonOpt, RootOpt, TargetOpt, app, emit_json, err, out, release_stages, require_stage
from gitops.errors import GitopsError
from gitops.files import atomic_write

DEFAULT_SCAN = Path("reports") / "scan.sarif"


def default_output(release_id: str) -> Path:
    """Where the page goes unless told: one file per release."""
    return Path("reports") / f"release-{release_id[:12]}.html"


@app.command()
def report(
    release: Annotated[Path, typer.Option("--release", help="The release the page is about.")] = Path("release"),
    stage: Annotated[
        list[str] | None, typer.Option("--stage", help="Only this stage (repeat for more; default: every stage).")
    ] = None,
    against: Annotated[
        Path | None,
        typer.Option("--against", help="Compare every stage with this release directory; read no target."),
    ] = None,
    scan: Annotated[
        Path | None, typer.Option("--scan", help="SARIF log of `gitops scan` (default: reports/scan.sarif if there).")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", help="The HTML file to write.")] = None,
    upload: Annotated[
        bool,
        typer.Option(
            "--upload", help="Also put it in the --stage's artifact bucket (reports/<release id>/release.html)."
        ),
    ] = False,
    exports: Annotated[
        Path | None,
        typer.Option("--exports", help="Write RELEASE_ID (and RELEASE_PAGE_URL) as shell exports, for CodeBuild."),
    ] = None,
    root: RootOpt = Path("."),
    target: TargetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A static HTML page: what a release changes per stage, its scan results and evidence, each stage's history."""
    from gitops.commands.status import status_target
    from gitops.release.manifest import load_release
    from gitops.report.html import render_html
    from gitops.report.page import collect_page
    from gitops.report.scan_results import read_scan_results

    manifest = load_release(release)
    for name in stage or []:
        require_stage("--stage", name, release_stages(release), str(release))
    if against is not None:
        load_release(against)
    if upload and (against is not None or len(stage or []) != 1):
        raise GitopsError("--upload needs exactly one --stage (its bucket) and a target to read, not --against")
    scan_path = scan if scan is not None else (DEFAULT_SCAN if DEFAULT_SCAN.is_file() else None)
    results = read_scan_results(scan_path) if scan_path is not None else None
    note = f"no scan log here ({DEFAULT_SCAN} is written by `gitops scan`)"
    if results is not None and results.release_id not in (None, manifest.release_id):
        if scan is not None:  # named on the command line: the caller expects it to be this release's
            raise GitopsError(
                f"{scan_path}: the scan log is of release {results.release_id[:12]}, not {manifest.short_id}",
                hint="scan this release (`gitops scan --release ...`) or give its own log with --scan",
            )
        # The default log left by an earlier scan: another release's results are not shown as this one's.
        note = f"{DEFAULT_SCAN} is of release {results.release_id[:12]}, not this one: not shown (scan this release)"
        results = None
    resolved = None if against is not None else status_target(root, target)[0]
    progress = None if as_json else (lambda msg: err.print(f"[dim]report[/] {msg}"))
    if progress:
        source = f"against {against}" if resolved is None else f"reading the {resolved.kind} target"
        progress(f"release {manifest.short_id}: {source}")
    page = collect_page(release, target=resolved, against=against, stages=stage, scan=results, scan_note=note)
    path = output or default_output(manifest.release_id)
    html = render_html(page)
    atomic_write(path, html)
    location = None
    if upload:
        from gitops.release.manifest import load_stage_config_from_release
        from gitops.report.publish import upload_page

        assert resolved is not None and stage
        location = upload_page(resolved, load_stage_config_from_release(release, stage[0]), manifest.release_id, html)
    if exports is not None:
        from gitops.report.publish import write_exports

        write_exports(exports, manifest.release_id, location)
    summary = {
        "release_id": page.release_id,
        "output": str(path),
        "uploaded": None if location is None else {"s3": location.s3_uri, "console": location.console_url},
        "stages": {
            s.stage: {
                "against": s.against,
                "stacks": len(s.diff.stacks),
                "replacements": sum(k.replacements for k in s.diff.stacks),
                "deletions": sum(k.count("remove") for k in s.diff.stacks),
                "pipelines": len(s.diff.pipelines),
                "evidence": {e.label: e.state for e in s.evidence},
            }
            for s in page.stages
        },
        "scan": None if results is None else {"passed": results.passed, "suppressions": len(results.suppressions)},
    }
    if as_json:
        emit_json(summary)
        return
    out.print(f"release page: {path}")
    if location is not None:
        out.print(f"uploaded: {location.s3_uri}\nopen it: {location.console_url}", soft_wrap=True)
