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
from dataclasses import dataclass, field
from pathlib import Path

from gitops.config import StageConfig
from gitops.errors import GitopsError
from gitops.promotion import envrepo
from gitops.promotion.state import LocalState
from gitops.release.manifest import load_release, load_stage_config_from_release
from gitops.target import Target

Log = Callable[[str], None]
# Decides a waiting approval: (stage, release_id, diff_text) -> (approved, summary); may block.
Decider = Callable[[str, str, str], tuple[bool | None, str]]  # None: wait for another terminal


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


class BuildImage:
    """The local stand-in for a CodeBuild image: a fresh virtualenv whose `pip` installs offline-fast.

    Buildspecs install the engine wheel the release carries (`pip install release/assets/...whl`);
    here `pip` is uv acting on this environment, so reviewed code from the release runs, not the
    checkout's. The image also holds moto, pinned to the server's version: deploying to the
    embedded target needs to know which resource types that server can create.
    """

    def __init__(self, base: Path) -> None:
        from importlib.metadata import version

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


def _release_id_in(directory: Path) -> str:
    return load_release(directory / envrepo.RELEASE_DIR).release_id


def run_stage_pipeline(
    release_dir: Path,
    stage: StageConfig,
    target: Target,
    *,
    decide: Decider,
    diff_text: Callable[[str], str],
    log: Log,
    timings: list[StepTiming],
) -> str:
    """Run one stage's CodePipeline from its synthesized template; returns the execution's status."""
    from gitops.local.codepipeline import SourceOutput, load_stage_pipeline, run_pipeline

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
        envrepo.checkout_head(target.env_repo_url(stage), checkout)
        commit = envrepo.git("rev-parse", "HEAD", cwd=checkout).stdout.strip()
        held["release_id"] = _release_id_in(checkout)
        return SourceOutput(checkout, {"CommitId": commit})

    def gate(stage_name: str, action_name: str, custom_data: str | None) -> tuple[str, str]:
        release_id = held["release_id"]
        text = diff_text(release_id)
        state.request_approval(stage.stage, release_id, execution_id, text)
        approved, summary = decide(stage.stage, release_id, text)
        if approved is not None:
            record = state.approval(stage.stage, release_id)
            if record is not None and record.status == "waiting":
                state.decide(stage.stage, release_id, approved, summary)
        record = state.wait_for_decision(stage.stage, release_id)
        return ("Approved" if record.status == "approved" else "Rejected"), record.summary or ""

    def on_update(record) -> None:
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
            env=target.env() | {"GITOPS_APPROVER": os.environ.get("USER", "rehearsal")},
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
    log: Log,
    render: Callable[[], str],
    scan: Callable[[], bool],
    diff_text: Callable[[StageConfig, str], str],
) -> RehearsalResult:
    """Drive the loop; each step is timed. Raises RehearsalFailed at the first failed step.

    target may be a function returning it, called after scan: its start-up overlaps render.
    """
    started = time.perf_counter()
    timings: list[StepTiming] = []

    def timed(stage: str, step: str, fn: Callable[[], object]) -> object:
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

    if callable(target):  # brought up while render and scan ran
        target = timed("-", "embedded target", target)
    manifest = load_release(release_dir)
    stages = {name: load_stage_config_from_release(release_dir, name) for name in manifest.stages}
    chain = _promotion_chain(stages)
    last = chain[-1]
    _, held_last = envrepo.current_release(target.env_repo_url(last))
    if held_last is not None and held_last.release_id == release_id:
        result.already_promoted = True
        log(f"{last.stage} already holds release {release_id[:12]}: nothing to rehearse")
    else:
        from gitops.promotion.promote import publish_release

        first = chain[0]
        timed(first.stage, "publish", lambda: publish_release(release_dir, first.stage, target))
        for stage in chain:
            run_stage_pipeline(
                release_dir,
                stage,
                target,
                decide=decide,
                diff_text=lambda rid, s=stage: diff_text(s, rid),
                log=log,
                timings=timings,
            )
    for stage in chain:
        _, held = envrepo.current_release(target.env_repo_url(stage))
        result.final_releases[stage.stage] = held.release_id if held else None
    result.seconds = round(time.perf_counter() - started, 2)
    return result


def _promotion_chain(stages: dict[str, StageConfig]) -> list[StageConfig]:
    from gitops.promotion.promote import first_stage

    chain = [first_stage(stages)]
    while chain[-1].promote_to:
        chain.append(stages[chain[-1].promote_to])
    return chain
