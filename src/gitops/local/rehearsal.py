"""`gitops rehearse`: the whole dev-to-prod loop on this machine, against the embedded target.

render -> scan -> publish to the first stage -> that stage's pipeline (read from its synthesized
template: Source, Deploy, Verify, Approve, Promote, running the real buildspecs) -> the next
stage's pipeline, and so on. The approval gate waits in the local state store, so another
terminal can `gitops approve`; `--approve` decides it here. Ctrl-C or a failure stops at a clean
state: an env repository only ever moves by one atomic push.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import TypeVar

from gitops.config import StageConfig, load_stages
from gitops.errors import GitopsError
from gitops.local.codepipeline import ExecutionRecord, SourceOutput, load_stage_pipeline, run_pipeline
from gitops.local.embedded import bring_up, read_server, stop_server
from gitops.local.model_rehearsal import ModelRehearsal, rehearse_model
from gitops.model.invoke import SERVING_PYTHON_ENV
from gitops.progress import Progress
from gitops.promotion import envrepo
from gitops.promotion.promote import first_stage, held_release, publish_release
from gitops.promotion.state import LocalState
from gitops.release.diff import diff_releases
from gitops.release.manifest import load_release, load_stage_config_from_release
from gitops.release.render import check_out_dir, render_release
from gitops.scan import scan_release
from gitops.scan.checkov import ensure_checkov
from gitops.target import DEFAULT_LOCAL_DIR, Target

# Decides a waiting approval: (stage, release_id, diff_text) -> (approved, summary); may block.
Decider = Callable[[str, str, str], tuple[bool | None, str]]  # None: wait for another terminal
# Asks a yes/no question at the terminal.
Confirm = Callable[[str], bool]
T = TypeVar("T")


_PHASES = "PROVISIONING|DOWNLOAD_SOURCE|INSTALL|PRE_BUILD|BUILD|POST_BUILD|UPLOAD_ARTIFACTS|FINALIZING"
_BUILD_LINE = re.compile(rf" \[({_PHASES})\] ")


class RehearsalFailed(GitopsError):
    hint = "read the failing step's log above; `gitops status --target local` shows where each stage is"


@dataclass
class StepTiming:
    stage: str
    step: str
    status: str
    seconds: float
    detail: str = ""


@dataclass
class RehearsalResult:
    release_id: str
    steps: list[StepTiming] = field(default_factory=list)
    seconds: float = 0.0
    already_promoted: bool = False
    final_releases: dict[str, str | None] = field(default_factory=dict)
    model: ModelRehearsal | None = None  # --model: the model's path from registry to prod


class BuildImage:
    """The local stand-in for a CodeBuild image: a fresh virtualenv whose `pip` installs offline-fast.

    Buildspecs install the engine wheel the release carries (`pip install release/assets/...whl`);
    here `pip` is uv acting on this environment, so reviewed code from the release runs, not the
    checkout's. The image also holds moto, pinned to the server's version: deploying to the
    embedded target needs to know which resource types that server can create.
    """

    def __init__(self, base: Path) -> None:
        self.dir = base
        python = base / "bin" / "python"
        uv = shutil.which("uv")
        if uv:
            subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(base)], check=True)
            pip = base / "bin" / "pip"
            pip.write_text(
                "#!/bin/sh\n# CodeBuild images ship pip; this local image's pip is uv on this environment.\n"
                f'exec "{uv}" pip "$@" --python "{python}"\n'
            )
            pip.chmod(0o755)
        else:
            subprocess.run([sys.executable, "-m", "venv", str(base)], check=True)
        subprocess.run(
            [str(base / "bin" / "pip"), "install", "-q", f"moto[server]=={version('moto')}"],
            check=True,
            capture_output=True,
            env=self.env(),
        )

    def env(self) -> dict[str, str]:
        """A clean build environment: the host's variables minus its Python setup, this image first."""
        host = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
        path = f"{self.dir / 'bin'}{os.pathsep}{host.get('PATH', '')}"
        return {**host, "PATH": path, "VIRTUAL_ENV": str(self.dir)}


def run_stage_pipeline(
    release_dir: Path,
    stage: StageConfig,
    target: Target,
    *,
    decide: Decider,
    diff_text: Callable[[str], str],
    log: Progress,
    timings: list[StepTiming],
) -> str:
    """Run one stage's CodePipeline from its synthesized template; returns the execution's status."""
    assert target.local_dir is not None
    state = LocalState(target.local_dir)
    model = load_stage_pipeline(
        release_dir, stage.stage, pseudo_parameters={"AWS::Region": stage.region, "AWS::AccountId": stage.account}
    )
    execution_id = str(uuid.uuid4())
    work = target.local_dir / "executions" / stage.stage
    work.mkdir(parents=True, exist_ok=True)
    held: dict[str, str] = {}

    def source() -> SourceOutput:
        checkout = Path(tempfile.mkdtemp(dir=work, prefix="source-"))
        shutil.rmtree(checkout)
        url = target.env_repo_url(stage)
        envrepo.checkout_head(url, checkout)
        head = envrepo.read_head(checkout)
        held["release_id"] = envrepo.require_intact(url, head, stage.stage).release_id
        return SourceOutput(checkout, {"CommitId": head.commit})

    def gate(stage_name: str, action_name: str, custom_data: str | None) -> tuple[str, str]:
        release_id = held["release_id"]
        text = diff_text(release_id)
        request = state.request_approval(stage.stage, release_id, execution_id, text)
        approved, summary = decide(stage.stage, release_id, text)
        if approved is not None:
            record = state.approval(stage.stage, release_id)
            if record is not None and record.status == "waiting":
                state.decide(stage.stage, release_id, approved, summary)
        record = state.wait_for_decision(stage.stage, release_id, token=request.token)
        return ("Approved" if record.status == "approved" else "Rejected"), record.summary or ""

    def on_update(record: ExecutionRecord) -> None:
        state.save_execution(stage.stage, execution_id, record.model_dump(mode="json"))

    # Build output (phases, commands, their output) goes to a log file per execution, as CodeBuild
    # sends it to CloudWatch; the terminal gets the pipeline's own progress lines.
    log_path = target.local_dir / "logs" / stage.stage / f"{execution_id}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with (
        open(log_path, "w", encoding="utf-8") as build_log,
        tempfile.TemporaryDirectory(prefix="gitops-image-") as image_dir,
    ):

        def route(line: str) -> None:
            build_log.write(line + "\n")
            build_log.flush()
            if _BUILD_LINE.search(line) is None:
                log(line)

        image = BuildImage(Path(image_dir) / "venv")
        record = run_pipeline(
            model,
            source_dir_provider=source,
            approval_gate=gate,
            env=target.env()
            | {
                "GITOPS_APPROVER": os.environ.get("USER", "rehearsal"),
                # The serving container's stand-in for verify's model call: this Python has its libraries.
                SERVING_PYTHON_ENV: sys.executable,
            },
            workdir=work,
            log=route,
            execution_id=execution_id,
            on_update=on_update,
            base_env=image.env(),
        )
    for st in record.stages:
        for action in st.actions:
            if action.status != "NotStarted":
                timings.append(
                    StepTiming(
                        stage.stage,
                        f"{st.name}/{action.name}",
                        action.status,
                        action.duration_seconds or 0.0,
                        action.message[:80],
                    )
                )
    shutil.rmtree(work / execution_id, ignore_errors=True)
    if record.status != "Succeeded":
        if record.status == "Failed":
            tail = log_path.read_text(encoding="utf-8").splitlines()[-25:]
            log("\n".join(["--- last lines of the build log " + str(log_path), *tail, "---"]))
        raise RehearsalFailed(f"{stage.stage} pipeline {record.status.lower()}: {record.failure or record.status}")
    return record.status


def rehearse(
    root: Path,
    release_dir: Path,
    target: Target | Callable[[], Target],
    *,
    decide: Decider,
    log: Progress,
    render: Callable[[], str],
    scan: Callable[[], bool],
    diff_text: Callable[[StageConfig, str], str],
) -> RehearsalResult:
    """Drive the loop; each step is timed. Raises RehearsalFailed at the first failed step.

    target may be a function returning it, called after scan: its start-up overlaps render.
    """
    started = time.perf_counter()
    timings: list[StepTiming] = []

    def timed(stage: str, step: str, fn: Callable[[], T]) -> T:
        t0 = time.perf_counter()
        try:
            value = fn()
        except BaseException:
            timings.append(StepTiming(stage, step, "Failed", round(time.perf_counter() - t0, 2)))
            raise
        timings.append(StepTiming(stage, step, "Succeeded", round(time.perf_counter() - t0, 2)))
        return value

    release_id = str(timed("-", "render", render))
    result = RehearsalResult(release_id, timings)
    if not timed("-", "scan", scan):
        raise RehearsalFailed(f"release {release_id[:12]} has unsuppressed policy findings (see the scan table)")

    # A function is called now: the target was brought up while render and scan ran.
    here = target if isinstance(target, Target) else timed("-", "embedded target", target)
    manifest = load_release(release_dir)
    stages = {name: load_stage_config_from_release(release_dir, name) for name in manifest.stages}
    chain = _promotion_chain(stages)
    last = chain[-1]
    _, held_last = envrepo.current_release(here.env_repo_url(last))
    if held_last is not None and held_last.release_id == release_id:
        result.already_promoted = True
        log(f"{last.stage} already holds release {release_id[:12]}: nothing to rehearse")
    else:
        first = chain[0]
        timed(first.stage, "publish", lambda: publish_release(release_dir, first.stage, here))
        for stage in chain:
            run_stage_pipeline(
                release_dir,
                stage,
                here,
                decide=decide,
                diff_text=partial(diff_text, stage),
                log=log,
                timings=timings,
            )
            if stage is chain[0]:  # deployed to the first stage: its SageMaker pipelines really run there
                run_sagemaker_pipelines(root, release_dir, stage, here, log=log, timings=timings)
            smoke_test_app(root, release_dir, stage, here, log=log, timings=timings)
    for stage in chain:
        _, held = envrepo.current_release(here.env_repo_url(stage))
        result.final_releases[stage.stage] = held.release_id if held else None
    result.seconds = round(time.perf_counter() - started, 2)
    return result


def smoke_test_app(
    root: Path, release_dir: Path, stage: StageConfig, target: Target, *, log: Progress, timings: list[StepTiming]
) -> None:
    """The serving app answers in this stage: app/ as a local process on PostgreSQL, predicting with the pinned model.

    No Docker engine here, so the image the release pins is not run: the same source (app/) is. The model
    is the stage's own copy of the pinned artifact, served by its own inference code; without a pin,
    moto's canned answer (and the check says so). Without PostgreSQL's binaries the step is NotRun, named.
    """
    from gitops.local.app_process import smoke_test_embedded
    from gitops.local.model_endpoint import INVOKER, MODEL_DIR_ENV, unpack_stage_model
    from gitops.local.postgres import PostgresMissing
    from gitops.release.app_image import read_release_app

    if not (root / "app").is_dir():
        return
    image = read_release_app(release_dir)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gitops-served-model-") as tmp:
        model = unpack_stage_model(target, stage, release_dir, Path(tmp))
        extra = {MODEL_DIR_ENV: tmp} if model else {}
        try:
            checks = smoke_test_embedded(
                root / "app",
                target,
                stage,
                model_id=model.package_arn if model else "unpinned",
                invoker=INVOKER if model else None,
                endpoint_emulated=False,
                extra_env=extra,
            )
        except PostgresMissing as exc:
            timings.append(StepTiming(stage.stage, "app smoke", "NotRun", 0.0, f"not run locally: {exc}"))
            log(f"{stage.stage} app: not run locally: {exc} ({exc.hint})")
            return
    seconds = round(time.perf_counter() - t0, 2)
    served = (
        f"image {image.image} (not run here: no Docker engine; app/ ran)" if image else "no image pinned (app/ ran)"
    )
    log(f"{stage.stage} app: {served}; model {model.short() if model else 'none pinned (moto canned answer)'}")
    for check in checks:
        log(f"{stage.stage} app {check.name}: {'ok' if check.ok else 'FAILED'}: {check.detail}")
    failed = [c for c in checks if not c.ok]
    timings.append(
        StepTiming(
            stage.stage, "app smoke", "Failed" if failed else "Succeeded", seconds, failed[0].detail if failed else ""
        )
    )
    if failed:
        raise RehearsalFailed(f"{stage.stage} app {failed[0].name}: {failed[0].detail}")


def run_sagemaker_pipelines(
    root: Path, release_dir: Path, stage: StageConfig, target: Target, *, log: Progress, timings: list[StepTiming]
) -> None:
    """Ingest the sample, then train (gitops.local.executor.rehearsal); each step's time goes into timings."""
    from gitops.local.executor.rehearsal import rehearse_pipelines

    for record in rehearse_pipelines(root, release_dir, stage, target, log=log):
        short = record.pipeline_name.removeprefix(f"{stage.prefix}-")
        for step in record.steps:
            if step.status != "NotRun":
                detail = (step.failure_reason or "")[:80]
                timings.append(
                    StepTiming(stage.stage, f"{short}/{step.name}", step.status, step.seconds or 0.0, detail)
                )
        # The total also holds what is no step: the offline-store write after ingestion, the transfers.
        timings.append(StepTiming(stage.stage, f"{short} (pipeline total)", record.status, record.seconds or 0.0))
        if record.status != "Succeeded":
            raise RehearsalFailed(f"{stage.stage} SageMaker pipeline {record.pipeline_name}: {record.failure_reason}")


def _rehearse_model(root: Path, target: Target, decide: Decider, log: Progress, say: Progress) -> ModelRehearsal:
    """The model's path (gitops.local.model_rehearsal): the loop again, on a scratch source with the proposed pin."""
    with tempfile.TemporaryDirectory(prefix="gitops-model-rehearsal-") as tmp:

        def run_loop(source: Path, release: Path) -> list[tuple[str, str, str, float]]:
            def diff_text(stage: StageConfig, release_id: str) -> str:
                nxt = stage.promote_to
                with tempfile.TemporaryDirectory(prefix="gitops-diff-") as held_dir:
                    try:
                        stages = load_stages(source)
                        base = held_release(stages[nxt], target, Path(held_dir) / "base") if nxt else None
                    except Exception:  # noqa: BLE001 (the next stage holds nothing yet)
                        base = None
                    return diff_releases(base, release).to_text()

            def render() -> str:
                rendered = render_release(source, release, progress=lambda m: say(f"render: {m}"))
                say(f"release {rendered.manifest.release_id} (with the proposed model pin)")
                return rendered.manifest.release_id

            def scan() -> bool:
                return scan_release(root, release, out_dir=Path(tmp) / "reports").passed

            done = rehearse(
                source, release, target, decide=decide, log=log, render=render, scan=scan, diff_text=diff_text
            )
            return [(s.stage, s.step, s.status, s.seconds) for s in done.steps]

        return rehearse_model(root, Path(tmp), target, run_loop=run_loop, say=say)


def _promotion_chain(stages: dict[str, StageConfig]) -> list[StageConfig]:
    chain = [first_stage(stages)]
    while chain[-1].promote_to:
        chain.append(stages[chain[-1].promote_to])
    return chain


def rehearse_locally(
    root: Path,
    release_dir: Path,
    *,
    approve: bool,
    keep_running: bool,
    say: Progress,
    log: Progress,
    show: Progress,
    confirm: Confirm | None,
    model: bool = False,
) -> RehearsalResult:
    """`gitops rehearse`: render, scan and the whole loop on the embedded target, brought up for it.

    say gets the rehearsal's own lines, log the pipelines' lines, show the diff an approver
    reads. At the gate: --approve decides at once; else confirm asks at the terminal; without
    one (confirm None) the approval waits in the local state store for another terminal. The
    target is stopped afterwards unless it was already running or keep_running.
    """
    check_out_dir(root, release_dir)  # before the embedded target starts: a foreign --out is refused first
    local_dir = (root / DEFAULT_LOCAL_DIR).resolve()
    was_running = read_server(local_dir) is not None
    target: Target | None = None

    def render() -> str:
        result = render_release(root, release_dir, progress=lambda m: say(f"render: {m}"))
        say(f"release {result.manifest.release_id}")
        return result.manifest.release_id

    def diff_text(stage: StageConfig, release_id: str) -> str:
        nxt = stage.promote_to
        with tempfile.TemporaryDirectory(prefix="gitops-diff-") as tmp:
            try:
                assert target is not None  # connected before any pipeline runs
                base = held_release(stages_by_name[nxt], target, Path(tmp) / "base") if nxt else None
            except Exception:  # noqa: BLE001 (the next stage holds nothing yet: diff against nothing)
                base = None
            return diff_releases(base, release_dir).to_text()

    def decide(stage: str, release_id: str, text: str) -> tuple[bool | None, str]:
        if approve:
            say(f"approval: release {release_id[:12]} approved (--approve)")
            return True, "approved by `gitops rehearse --approve`"
        show(text)
        if confirm is not None:
            ok = confirm(f"Promote release {release_id[:12]} from {stage}?")
            return ok, "approved at the rehearsal prompt" if ok else "rejected at the rehearsal prompt"
        say(f"approval: release {release_id[:12]} waits in {stage}; from another terminal run:")
        say(f"  GITOPS_TARGET=local gitops approve --release {release_id[:12]}   (or reject)")
        return None, ""

    stages_by_name = load_stages(root)
    say(f"embedded target: {'reusing' if was_running else 'starting'} moto on loopback")
    # The server and the checkov environment start in the background while render runs.
    background = ThreadPoolExecutor(max_workers=2, thread_name_prefix="gitops-rehearse")
    server = background.submit(bring_up, root)
    tools = background.submit(ensure_checkov, root.resolve())

    def connect() -> Target:
        nonlocal target
        found_dir, endpoint = server.result()
        target = Target("local", found_dir, endpoint)
        return target

    def scan_when_ready() -> bool:
        tools.result()
        report = scan_release(root, release_dir, progress=lambda m: say(f"scan: {m}"))
        say(f"scan: {'passed' if report.passed else 'FAILED'}")
        return report.passed

    try:
        result = rehearse(
            root, release_dir, connect, decide=decide, log=log, render=render, scan=scan_when_ready, diff_text=diff_text
        )
        if model:
            assert target is not None
            result.model = _rehearse_model(root, target, decide, log, say)
        return result
    finally:
        background.shutdown(wait=True)
        if not was_running and not keep_running:
            stop_server(local_dir)
