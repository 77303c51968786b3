"""Stand-in for the training pipeline on the embedded target: train.py on the sample, registered Pending.

Until the local SageMaker pipeline executor (issue 14, gitops.local.executor) runs the training
pipeline itself, the rehearsal builds the model by running the pipeline's own step code
(preprocess.py -> train.py -> evaluate.py) on the sample CSV, packs model.tar.gz as a training job
does, uploads it to the training stage's artifact bucket and registers it PendingManualApproval
with its evaluation metrics, as the RegisterModel step would. `train_sample_model` and
`register_model` are the two pieces the executor replaces; nothing else depends on how the
package came to be.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops.config import StageConfig
from gitops.errors import GitopsError
from gitops.local.executor.steps.register_model import stand_in_digest

STEPS = Path("pipeline_defs") / "training" / "steps"
SAMPLE_DIR = Path("pipeline_defs") / "feature_ingestion" / "sample"
# The scikit-learn inference image the pipeline registers (pipeline_defs/common.py sklearn_image);
# SageMaker records the digest it resolved. The embedded target has no ECR to resolve one, so the
# stand-in digest below is derived from the tag and labelled as such wherever it is shown.
IMAGE_TAG = "141502667606.dkr.ecr.{region}.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


class SampleTrainingFailed(GitopsError):
    hint = "run the step scripts by hand (see pipeline_defs/training/steps/*.py docstrings) to see why"


@dataclass
class TrainedModel:
    data: bytes  # model.tar.gz
    evaluation: bytes  # evaluation.json, as the Evaluate step writes it
    metrics: dict[str, float]
    data_read: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def _run(root: Path, script: Path, *args: object) -> str:
    env = {**os.environ, "PYTHONPATH": str(root / "pipeline_defs")}
    done = subprocess.run(
        [sys.executable, str(root / script), *map(str, args)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SampleTrainingFailed(f"{script}: exited {done.returncode}: {last}", detail=done.stderr)
    return done.stdout


def pack_model(model_dir: Path) -> bytes:
    """model.tar.gz as a training job packs /opt/ml/model, byte-reproducible (fixed times and owners)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for path in sorted(model_dir.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=path.relative_to(model_dir).as_posix())
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if path.is_file():
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
    return gzip.compress(raw.getvalue(), mtime=0)


def train_sample_model(root: Path) -> TrainedModel:
    """preprocess -> train -> evaluate on the sample CSV with the pipeline's own step code."""
    with tempfile.TemporaryDirectory(prefix="gitops-train-") as tmp:
        work = Path(tmp)
        _run(root, STEPS / "preprocess.py", "--input-dir", root / SAMPLE_DIR, "--output-dir", work / "prep")
        prep = work / "prep"
        _run(
            root,
            STEPS / "model" / "train.py",
            "--train",
            prep / "train",
            "--validation",
            prep / "validation",
            "--model-dir",
            work / "model",
        )
        (work / "artifact").mkdir()
        data = pack_model(work / "model")
        (work / "artifact" / "model.tar.gz").write_bytes(data)
        _run(
            root,
            STEPS / "evaluate.py",
            "--model-dir",
            work / "artifact",
            "--test-dir",
            prep / "test",
            "--output-dir",
            work / "evaluation",
        )
        evaluation = (work / "evaluation" / "evaluation.json").read_bytes()
    report = json.loads(evaluation)
    metrics = {name: float(value["value"]) for name, value in report.get("binary_classification_metrics", {}).items()}
    if "auc" not in metrics:
        raise SampleTrainingFailed(f"{STEPS / 'evaluate.py'}: evaluation.json has no binary_classification_metrics.auc")
    return TrainedModel(
        data, evaluation, metrics, data_read=f"{SAMPLE_DIR / 'customers.csv'} (sample; the executor reads Athena)"
    )


def stand_in_image(region: str) -> tuple[str, str]:
    """(image tag, stand-in digest): the embedded target has no ECR to resolve the tag's digest."""
    tag = IMAGE_TAG.format(region=region)
    return tag, stand_in_digest(tag)


def register_model(sm: Any, s3: Any, config: StageConfig, trained: TrainedModel, job_name: str) -> str:
    """Upload model.tar.gz as the training job would, register it PendingManualApproval; its ARN."""
    bucket, prefix = config.artifact_bucket_name, f"{config.pipeline_name('training')}/{job_name}"
    key = f"{prefix}/Train/output/model.tar.gz"
    s3.put_object(Bucket=bucket, Key=key, Body=trained.data, ChecksumAlgorithm="SHA256")
    s3.put_object(Bucket=bucket, Key=f"{prefix}/Evaluate/evaluation.json", Body=trained.evaluation)
    tag, digest = stand_in_image(config.region)
    created = sm.create_model_package(
        ModelPackageGroupName=config.model_package_group_name,
        ModelPackageDescription=f"training job {job_name}",
        ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={
            "Containers": [
                {"Image": tag, "ImageDigest": digest, "ModelDataUrl": f"s3://{config.artifact_bucket_name}/{key}"}
            ],
            "SupportedContentTypes": ["text/csv", "application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        # Where RegisterModel puts the Evaluate step's report (ModelMetrics(model_statistics=...)).
        ModelMetrics={
            "ModelQuality": {
                "Statistics": {
                    "ContentType": "application/json",
                    "S3Uri": f"s3://{bucket}/{prefix}/Evaluate/evaluation.json",
                }
            }
        },
        CustomerMetadataProperties={
            "training_job": job_name,
            "data": trained.data_read,
            "artifact_sha256": trained.sha256,
        },
    )
    return str(created["ModelPackageArn"])


def approve_package(sm: Any, arn: str, note: str = "approved in the registry") -> None:
    """The registry's Approve click. The metadata is sent again: moto 5.2 drops it on any update (AWS keeps it)."""
    metadata = sm.describe_model_package(ModelPackageName=arn).get("CustomerMetadataProperties") or {}
    sm.update_model_package(
        ModelPackageArn=arn,
        ModelApprovalStatus="Approved",
        ApprovalDescription=note,
        **({"CustomerMetadataProperties": metadata} if metadata else {}),
    )
