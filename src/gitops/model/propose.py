"""`gitops model propose`: an Approved model package becomes a proposed commit of the model pin.

Reads the package (by default the newest Approved one in the training stage's group: the one
place a "newest approved" lookup exists, and it only proposes), checks the artifact's sha256 and
the metrics against every stage's threshold, and writes models/serving.yaml as one commit on a
new branch, made with git plumbing so the working tree and the current branch are left alone.
The commit message is the PR description: AUC old -> new, the training job, the data it read.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from gitops.config import StageConfig, load_stages
from gitops.errors import GitopsError, aws_error_text
from gitops.model.pin import PIN_PATH, ModelPin, ModelPinError, ServedModel, load_pin, parse_pin, pin_yaml
from gitops.progress import Progress
from gitops.target import Target

APPROVED = "Approved"
PIN_HEADER = (
    "# The model every stage serves: one reviewed pin, carried in the release as model.json.\n"
    "# Written by `gitops model propose` from an Approved model package; reviewed and merged like any change.\n"
)


class ProposeError(GitopsError):
    hint = "approve a package that passes in the training stage's model registry, then re-run `gitops model propose`"


@dataclass
class Proposal:
    proposed: bool
    reason: str  # why nothing was proposed, or "proposed"
    package_arn: str | None = None
    branch: str | None = None
    commit: str | None = None
    description: str = ""
    old: str | None = None
    new: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def training_stage(stages: dict[str, StageConfig]) -> StageConfig:
    """The stage models are trained and registered in: the first in promotion order."""
    return next(iter(stages.values()))


def event_decision(event: dict) -> tuple[str | None, str]:
    """(package ARN to propose, or None; why) for an EventBridge "SageMaker Model Package State Change"."""
    detail = event.get("detail") or {}
    arn = detail.get("ModelPackageArn")
    status = detail.get("ModelApprovalStatus")
    if event.get("detail-type") != "SageMaker Model Package State Change" or not arn:
        return None, "not a SageMaker Model Package State Change event: nothing to propose"
    if status != APPROVED:
        return None, f"{arn} is {status}, not {APPROVED}: nothing to propose"
    return str(arn), f"{arn} was approved"


def newest_approved(sm: Any, config: StageConfig) -> str:
    found = sm.list_model_packages(
        ModelPackageGroupName=config.model_package_group_name,
        ModelApprovalStatus=APPROVED,
        SortBy="CreationTime",
        SortOrder="Descending",
        MaxResults=1,
    )["ModelPackageSummaryList"]
    if not found:
        raise ProposeError(f"stage '{config.stage}': no Approved package in {config.model_package_group_name}")
    return str(found[0]["ModelPackageArn"])


def _read_s3(s3: Any, uri: str) -> bytes:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def read_package(sm: Any, s3: Any, arn: str) -> ServedModel:
    """The package as a pin: Approved, image by digest, artifact hashed from its bytes, metrics from its report."""
    try:
        package = sm.describe_model_package(ModelPackageName=arn)
    except ClientError as exc:
        raise ProposeError(f"model package {arn}: {aws_error_text(exc)}") from exc
    status = package.get("ModelApprovalStatus")
    if status != APPROVED:
        raise ProposeError(f"model package {arn} is {status}, not {APPROVED}; nothing proposed")
    containers = (package.get("InferenceSpecification") or {}).get("Containers") or []
    if len(containers) != 1:
        raise ProposeError(f"model package {arn}: expected one inference container, found {len(containers)}")
    container = containers[0]
    digest = container.get("ImageDigest") or ""
    image = str(container.get("Image", ""))
    repository = image.split("@", 1)[0]
    if ":" in repository.rsplit("/", 1)[-1]:
        repository = repository.rsplit(":", 1)[0]
    if not digest:
        raise ProposeError(f"model package {arn}: image {image} has no ImageDigest; a pin needs the image by digest")
    metadata = package.get("CustomerMetadataProperties") or {}
    uri = str(container.get("ModelDataUrl", ""))
    try:
        data = _read_s3(s3, uri)
    except ClientError as exc:
        raise ProposeError(f"model package {arn}: artifact {uri}: {aws_error_text(exc)}") from exc
    sha256 = hashlib.sha256(data).hexdigest()
    recorded = metadata.get("artifact_sha256")
    if recorded and recorded != sha256:
        raise ProposeError(
            f"model package {arn}: artifact {uri} has sha256 {sha256[:12]}…, the package records {recorded[:12]}…"
        )
    stats = ((package.get("ModelMetrics") or {}).get("ModelQuality") or {}).get("Statistics") or {}
    if not stats.get("S3Uri"):
        raise ProposeError(f"model package {arn}: no ModelQuality statistics (the Evaluate step's report)")
    try:
        report = json.loads(_read_s3(s3, stats["S3Uri"]))
    except (ClientError, ValueError) as exc:
        raise ProposeError(f"model package {arn}: evaluation report {stats['S3Uri']}: {exc}") from exc
    metrics = {k: float(v["value"]) for k, v in (report.get("binary_classification_metrics") or {}).items()}
    raw = {
        "package_arn": arn,
        "artifact": {"uri": uri, "sha256": sha256},
        "image": f"{repository}@{digest}",
        "metrics": metrics,
        "training_job": metadata.get("training_job") or package.get("ModelPackageDescription"),
        "data": metadata.get("data"),
    }
    if not metrics:
        raise ProposeError(f"model package {arn}: its evaluation report has no binary_classification_metrics")
    try:
        pin = parse_pin({"model": {k: v for k, v in raw.items() if v is not None}}, f"model package {arn}")
    except ModelPinError as exc:
        raise ProposeError(str(exc) + "; nothing proposed") from exc
    assert pin.model is not None
    return pin.model


def check_thresholds(model: ServedModel, stages: dict[str, StageConfig]) -> None:
    """A pin goes to every stage: it must pass every stage's threshold (prod's is usually the strictest)."""
    from gitops.model.pin import check_threshold

    for config in stages.values():
        try:
            check_threshold(model, config, f"model package {model.package_arn}")
        except ModelPinError as exc:
            raise ProposeError(str(exc) + "; nothing proposed") from exc


def describe_change(old: ServedModel | None, new: ServedModel) -> str:
    """The PR description: package old -> new, every metric old -> new, the training job, the data."""
    lines = [f"Serve model {new.group}/{new.version} (was {f'{old.group}/{old.version}' if old else 'none'})", ""]
    lines.append(f"- package: {old.package_arn if old else 'none'} -> {new.package_arn}")
    for name in sorted(set(new.metrics) | set(old.metrics if old else {})):
        before = f"{old.metrics[name]:.4f}" if old and name in old.metrics else "none"
        after = f"{new.metrics[name]:.4f}" if name in new.metrics else "none"
        lines.append(f"- {name.upper() if name == 'auc' else name}: {before} -> {after}")
    lines.append(f"- artifact: {new.artifact.uri} (sha256 {new.artifact.sha256})")
    lines.append(f"- image: {new.image}")
    lines.append(f"- training job: {new.training_job or 'not recorded'}")
    lines.append(f"- data read: {new.data or 'not recorded'}")
    return "\n".join(lines) + "\n"


def _git(root: Path, *args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> str:
    done = subprocess.run(
        ["git", "-C", str(root), *args],
        capture_output=True,
        text=True,
        input=stdin,
        env={**os.environ, "LC_ALL": "C", **(env or {})},
        timeout=60,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ProposeError(f"git {args[0]} failed: {last}")
    return done.stdout.strip()


def commit_pin(root: Path, text: str, branch: str, message: str) -> str:
    """One commit on `branch` (new, from HEAD) changing only models/serving.yaml; the working tree is untouched."""
    if _git(root, "branch", "--list", branch):
        raise ProposeError(f"branch {branch} exists already: the package was proposed before", hint="review that PR")
    blob = _git(root, "hash-object", "-w", "--stdin", stdin=text)
    with tempfile.TemporaryDirectory(prefix="gitops-propose-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        _git(root, "read-tree", "HEAD", env=env)
        _git(root, "update-index", "--add", "--cacheinfo", f"100644,{blob},{PIN_PATH.as_posix()}", env=env)
        tree = _git(root, "write-tree", env=env)
    identity = {
        "GIT_AUTHOR_NAME": os.environ.get("GITOPS_GIT_AUTHOR", "gitops"),
        "GIT_AUTHOR_EMAIL": "gitops@localhost",
        "GIT_COMMITTER_NAME": os.environ.get("GITOPS_GIT_AUTHOR", "gitops"),
        "GIT_COMMITTER_EMAIL": "gitops@localhost",
    }
    commit = _git(root, "commit-tree", tree, "-p", "HEAD", "-F", "-", env=identity, stdin=message)
    _git(root, "update-ref", f"refs/heads/{branch}", commit, "0" * 40)
    return commit


def propose_model(
    root: Path,
    target: Target,
    *,
    package_arn: str | None = None,
    event: dict | None = None,
    progress: Progress | None = None,
) -> Proposal:
    """Check a package and commit it as the pin on branch model/<group>-<version>; or say why not."""
    say = progress or (lambda _msg: None)
    stages = load_stages(root)
    current = load_pin(root)
    if event is not None:
        package_arn, why = event_decision(event)
        say(why)
        if package_arn is None:
            return Proposal(False, why)
    config = training_stage(stages)
    session = target.session(config)
    sm, s3 = target.client(config, "sagemaker", session), target.client(config, "s3", session)
    arn = package_arn or newest_approved(sm, config)
    say(f"reading {arn}")
    model = read_package(sm, s3, arn)
    check_thresholds(model, stages)
    old = current.model
    if old is not None and old.package_arn == model.package_arn and old.artifact == model.artifact:
        return Proposal(False, f"{arn} is already the pin", arn, old=old.short(), new=model.short())
    description = describe_change(old, model)
    branch = f"model/{model.group}-{model.version}"
    text = pin_yaml(ModelPin(model=model), PIN_HEADER)
    commit = commit_pin(root, text, branch, description)
    say(f"committed {PIN_PATH} on {branch} ({commit[:12]})")
    return Proposal(True, "proposed", arn, branch, commit, description, old.short() if old else None, model.short())
