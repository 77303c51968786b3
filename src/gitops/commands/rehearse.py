"""`gitops rehearse`: the README's main job, the whole dev-to-prod loop on this machine."""

from __future__ import annotations

import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from gitops.cli import JsonOpt, OutOpt, RootOpt, app, emit_json, err, out


@app.command()
def rehearse(
    approve: Annotated[bool, typer.Option("--approve", help="Approve at the gate without asking.")] = False,
    root: RootOpt = Path("."),
    out_dir: OutOpt = Path("release"),
    keep_running: Annotated[
        bool, typer.Option("--keep-running", help="Leave the embedded target up afterwards (`gitops local down`).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Render, scan, publish to dev, deploy+verify dev, the approval click, promote, deploy+verify prod."""
    from gitops.commands.local import bring_up
    from gitops.config import StageConfig
    from gitops.local.embedded import read_server, stop_server
    from gitops.local.rehearsal import rehearse as run
    from gitops.promotion.promote import held_release
    from gitops.release.diff import diff_releases
    from gitops.release.render import check_out_dir, render_release
    from gitops.scan import scan_release
    from gitops.scan.checkov import ensure_checkov
    from gitops.target import DEFAULT_LOCAL_DIR, Target

    def log(msg: str) -> None:
        if not as_json:
            err.print(msg, style="dim", markup=False, soft_wrap=True)

    def say(msg: str) -> None:
        if not as_json:
            err.print(f"[bold]rehearse[/] {msg}")

    check_out_dir(root, out_dir)  # before the embedded target starts: a foreign --out is refused first
    local_dir = (root / DEFAULT_LOCAL_DIR).resolve()
    was_running = read_server(local_dir) is not None

    def render() -> str:
        result = render_release(root, out_dir, progress=lambda m: say(f"render: {m}"))
        say(f"release {result.manifest.release_id}")
        return result.manifest.release_id

    def scan() -> bool:
        report = scan_release(root, out_dir, progress=lambda m: say(f"scan: {m}"))
        say(f"scan: {'passed' if report.passed else 'FAILED'}")
        return report.passed

    def diff_text(stage: StageConfig, release_id: str) -> str:
        nxt = stage.promote_to
        with tempfile.TemporaryDirectory(prefix="gitops-diff-") as tmp:
            try:
                base = held_release(stages_by_name[nxt], target, Path(tmp) / "base") if nxt else None
            except Exception:  # noqa: BLE001 (the next stage holds nothing yet: diff against nothing)
                base = None
            return diff_releases(base, out_dir).to_text()

    def decide(stage: str, release_id: str, text: str) -> tuple[bool | None, str]:
        if approve:
            say(f"approval: release {release_id[:12]} approved (--approve)")
            return True, "approved by `gitops rehearse --approve`"
        err.print(text)
        if sys.stdin.isatty():
            ok = typer.confirm(f"Promote release {release_id[:12]} from {stage}?", default=False)
            return ok, "approved at the rehearsal prompt" if ok else "rejected at the rehearsal prompt"
        say(f"approval: release {release_id[:12]} waits in {stage}; from another terminal run:")
        say(f"  GITOPS_TARGET=local gitops approve --release {release_id[:12]}   (or reject)")
        return None, ""

    from gitops.config import load_stages

    stages_by_name: dict[str, StageConfig] = load_stages(root)
    say(f"embedded target: {'reusing' if was_running else 'starting'} moto on loopback")
    # The server and the checkov environment start in the background while render runs.
    background = ThreadPoolExecutor(max_workers=2, thread_name_prefix="gitops-rehearse")
    server = background.submit(bring_up, root)
    tools = background.submit(ensure_checkov, root.resolve())
    target: Target | None = None

    def connect() -> Target:
        nonlocal target
        found_dir, endpoint = server.result()
        target = Target("local", found_dir, endpoint)
        return target

    def scan_when_ready() -> bool:
        tools.result()
        return scan()

    try:
        result = run(
            root, out_dir, connect, decide=decide, log=log, render=render, scan=scan_when_ready, diff_text=diff_text
        )
    except KeyboardInterrupt:
        err.print("[bold red]interrupted[/]: env repositories move only by atomic pushes; see `gitops status`")
        raise typer.Exit(130) from None
    finally:
        background.shutdown(wait=True)
        if not was_running and not keep_running:
            stop_server(local_dir)
    if as_json:
        emit_json(
            {
                "release_id": result.release_id,
                "seconds": result.seconds,
                "already_promoted": result.already_promoted,
                "final_releases": result.final_releases,
                "steps": [s.__dict__ for s in result.steps],
            }
        )
        return
    table = Table(title=f"rehearsal of release {result.release_id[:12]}", title_justify="left")
    for col in ("stage", "step", "status", "seconds"):
        table.add_column(col, justify="right" if col == "seconds" else "left")
    for s in result.steps:
        table.add_row(s.stage, s.step, s.status, f"{s.seconds:.1f}")
    table.add_row("", "total", "", f"{result.seconds:.1f}")
    out.print(table)
    for stage, rid in result.final_releases.items():
        out.print(f"{stage:>6}: {rid or '(none)'}")
    if result.already_promoted:
        out.print("nothing to do: the last stage already holds this release")
