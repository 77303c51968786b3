"""`gitops scan`: the blocking policy gate over a rendered release; a table by stack, --json, SARIF and JUnit."""

from __future__ import annotations

from itertools import groupby
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from gitops.cli import JsonOpt, RootOpt, app, emit_json, err, out

_STYLE = {"error": "bold red", "warning": "yellow", "note": "cyan"}


@app.command()
def scan(
    release: Annotated[Path, typer.Option("--release", help="Release directory to scan.")] = Path("release"),
    root: RootOpt = Path("."),
    policy: Annotated[
        Path | None, typer.Option("--policy", help="Policy file, the only place to suppress (default: policy.yaml).")
    ] = None,
    sarif: Annotated[
        Path | None, typer.Option("--sarif", help="SARIF 2.1.0 output (default: reports/scan.sarif).")
    ] = None,
    junit: Annotated[
        Path | None, typer.Option("--junit", help="JUnit XML output (default: reports/scan-junit.xml).")
    ] = None,
    no_install: Annotated[
        bool, typer.Option("--no-install", help="Fail if checkov's environment is missing instead of creating it.")
    ] = False,
    no_source: Annotated[
        bool,
        typer.Option(
            "--no-source", help="Scan the release alone, with its own policy (an env repository holds no source)."
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run every registered scanner (cfn-lint, checkov, cdk-nag, secrets, pipeline jobs); exit 0 only if clean.

    The verdict is attested on this machine for exactly this release and policy: publish, deploy
    and promote accept a release only with that attestation, or scan it themselves.
    """
    from gitops.scan import scan_release

    progress = None if as_json else (lambda msg: err.print(f"[dim]scan[/] {msg}"))
    report = scan_release(
        root,
        release,
        policy_path=policy,
        progress=progress,
        sarif_path=sarif,
        junit_path=junit,
        install_checkov=not no_install,
        source=not no_source,
    )
    if as_json:
        emit_json(report.to_dict())
    else:
        _print(report)
    if not report.passed:
        raise typer.Exit(1)


def _print(report) -> None:
    for group, members in groupby(report.findings, key=lambda f: f.group):
        table = Table(title=group, title_justify="left", show_lines=False)
        for col in ("severity", "rule ids", "resource / file", "finding"):
            table.add_column(col, overflow="fold")
        hinted: set[str] = set()
        for finding in members:
            where = (finding.step or finding.resource or finding.file) if finding.in_template else finding.file
            if finding.line and not finding.in_template:
                where += f":{finding.line}"
            text = finding.message
            if finding.hint and finding.hint not in hinted:  # once per table: nag's explanations repeat
                hinted.add(finding.hint)
                text += f"\n[dim]fix: {finding.hint}[/]"
            table.add_row(
                f"[{_STYLE[finding.severity]}]{finding.severity}[/]",
                "\n".join(finding.rule_ids),
                where,
                text,
            )
        out.print(table)
    summary = Table(title=f"release {report.release_id[:12]}: checks per tool", title_justify="left")
    for col in ("tool", "version", "rules", "passed", "failed", "suppressed", "seconds"):
        summary.add_column(col, justify="left" if col in ("tool", "version") else "right")
    for name, stats in report.tools.items():
        summary.add_row(
            name,
            stats.version,
            str(len(stats.rules)),
            str(stats.passed),
            str(stats.failed),
            str(stats.suppressed),
            f"{stats.seconds:.1f}",
        )
    out.print(summary)
    out.print(f"reports: {report.sarif}, {report.junit}")
    suppressed = f"{len(report.suppressed)} suppressed by {report.policy_path}"
    if report.passed:
        out.print(f"[bold green]scan passed[/]: no unsuppressed findings ({suppressed}), {report.seconds:.1f}s")
    else:
        out.print(f"[bold red]scan failed[/]: {len(report.findings)} finding(s) ({suppressed}), {report.seconds:.1f}s")
