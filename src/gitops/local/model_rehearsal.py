"""The rehearsal's model path: a registry approval travels as a reviewed pin through dev to prod.

After the first loop has deployed the stages and run the training pipeline in the training stage
(the local executor: features from the offline store by Athena, train, evaluate, RegisterModel
Pending), this part takes the package that run registered, approves it in the registry, shows that nothing
deployed changed, proposes it as a pin (`gitops model propose`, on a branch of a scratch copy of
the source), merges that branch, renders, and runs the loop again: deploy to dev, verify by a
real prediction, the approval gate, promotion (which carries the artifact into prod) and prod's
deploy and verify. It prints the model each stage serves at every step, and checks prod serves
the same sha256 as dev.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from gitops.config import StageConfig, load_stages
from gitops.errors import GitopsError
from gitops.local.sample_model import approve_package
from gitops.model.artifact import read_sha256
from gitops.model.change import held_model
from gitops.model.pin import PIN_PATH, load_pin
from gitops.model.propose import propose_model, training_stage
from gitops.progress import Progress
from gitops.target import Target

T = TypeVar("T")
# Never copied anywhere in the tree; at the top only, also what the source tree's runs write there.
_NOT_COPIED = {".git", ".venv", "node_modules", "cdk.out", "__pycache__", ".pytest_cache"}
_NOT_COPIED_AT_TOP = {"release", "reports"}


class ModelRehearsalFailed(GitopsError):
    hint = "read the model lines above: each stage's served model is printed at every step"


@dataclass
class ModelRehearsal:
    package_arn: str = ""
    sha256: str = ""
    served: dict[str, str] = field(default_factory=dict)  # stage -> sha256 of its served copy
    lines: list[str] = field(default_factory=list)  # "<step>: <stage> <model>" as printed
    timings: dict[str, float] = field(default_factory=dict)
    loop: list[tuple[str, str, str, float]] = field(default_factory=list)  # (stage, step, status, seconds)


def scratch_source(root: Path, into: Path) -> Path:
    """A copy of the working tree as one commit (render's cache kept): proposing must not touch the user's repo."""

    def ignore(directory: str, names: list[str]) -> set[str]:
        skip = {n for n in names if n in _NOT_COPIED}
        if Path(directory).resolve() == root.resolve():
            skip |= {n for n in names if n in _NOT_COPIED_AT_TOP}
        if Path(directory).name == ".gitops":
            skip |= {n for n in names if n != "cache"}
        return skip

    shutil.copytree(root, into, ignore=ignore, symlinks=True)
    ident = ["-c", "user.name=gitops", "-c", "user.email=gitops@localhost", "-c", "commit.gpgsign=false"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], [*ident, "commit", "-q", "-m", "rehearsal source"]):
        subprocess.run(["git", "-C", str(into), *args], check=True, capture_output=True, timeout=120)
    return into


def served_sha256(target: Target, config: StageConfig, sha256: str) -> str | None:
    """The sha256 of the stage's own copy of the model (hashed by S3 or here), None if it holds none."""
    key = f"models/{sha256}/model.tar.gz"
    found = read_sha256(target.client(config, "s3"), config.artifact_bucket_name, key)
    return found[0] if found else None


def rehearse_model(
    root: Path,
    scratch: Path,
    target: Target,
    *,
    run_loop: Callable[[Path, Path], list[tuple[str, str, str, float]]],
    say: Progress,
) -> ModelRehearsal:
    """The model's path; run_loop(source_root, release_dir) renders, scans and runs every stage's pipeline."""
    result = ModelRehearsal()
    stages = load_stages(root)
    dev = training_stage(stages)

    def show(step: str) -> None:
        for config in stages.values():
            line = f"model [{step}] {config.stage}: {held_model(target, config)}"
            result.lines.append(line)
            say(line)

    def timed(step: str, fn: Callable[[], T]) -> T:
        t0 = time.perf_counter()
        value = fn()
        result.timings[step] = round(time.perf_counter() - t0, 2)
        return value

    sm = target.client(dev, "sagemaker")
    arn = registered_package(sm, dev)
    result.package_arn = arn
    say(f"model: {arn} registered PendingManualApproval by the training pipeline's RegisterModel step")
    show("registered Pending")
    approve_package(sm, arn, "approved by the rehearsal")
    say(f"model: {arn} approved in the registry")
    show("approved in the registry; nothing deployed changes")

    source = scratch_source(root, scratch / "source")
    proposal = timed("propose", lambda: propose_model(source, target, package_arn=arn, progress=say))
    if not proposal.proposed:
        raise ModelRehearsalFailed(f"nothing proposed: {proposal.reason}")
    say(f"model: proposed on branch {proposal.branch}:\n{proposal.description}")
    subprocess.run(
        ["git", "-C", str(source), "merge", "-q", "--ff-only", str(proposal.branch)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    say(f"model: merged {PIN_PATH} (the reviewed pin); rendering and running the loop again")
    result.loop = timed(
        "render, deploy dev, verify, approve, promote, deploy prod", lambda: run_loop(source, scratch / "release")
    )
    show("promoted")
    pinned = load_pin(source).model
    if pinned is None:
        raise ModelRehearsalFailed(f"the merged {PIN_PATH} pins no model")
    result.sha256 = pinned.artifact.sha256
    for config in stages.values():
        got = served_sha256(target, config, result.sha256)
        result.served[config.stage] = got or "none"
        say(f"model: {config.stage} serves s3://{config.artifact_bucket_name}/models/…/model.tar.gz sha256 {got}")
    if set(result.served.values()) != {result.sha256}:
        raise ModelRehearsalFailed(f"stages do not all serve sha256 {result.sha256[:12]}: {result.served}")
    return result


def registered_package(sm: Any, config: StageConfig) -> str:
    """The newest package the training pipeline registered in the stage's group, still waiting for approval."""
    found = sm.list_model_packages(
        ModelPackageGroupName=config.model_package_group_name,
        ModelApprovalStatus="PendingManualApproval",
        SortBy="CreationTime",
        SortOrder="Descending",
    ).get("ModelPackageSummaryList", [])
    if not found:
        raise ModelRehearsalFailed(
            f"no PendingManualApproval package in {config.model_package_group_name}: the training pipeline did not"
            f" register one in {config.stage}"
        )
    return str(found[0]["ModelPackageArn"])
