"""The drill's data: what a stage holds after use (features ingested, models registered, app rows), written for real.

Offline-store objects are the sample customers in Feature Store's offline layout; model packages are
registered in the stage's group with metrics reports and artifacts in its bucket; the app's rows go
through the app's own migrations into a real PostgreSQL. (The local pipeline executor and the App
stack are other branches' work: when they land, the drill can write through them instead.)
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops.errors import GitopsError
from gitops.local.app_process import app_environment, ensure_secret
from gitops.local.embedded import free_port
from gitops.local.postgres import ThrowawayPostgres
from gitops.recovery.inventory import StageContext
from gitops.recovery.kinds.feature_offline import DEFAULT_PREFIX
from gitops.recovery.kinds.secrets import app_db_secret_name

SAMPLE = Path("pipeline_defs") / "feature_ingestion" / "sample" / "customers.csv"
PARTITIONS = 3
PREDICTIONS = 25
FEEDBACK = 10


class DrillDataError(GitopsError):
    hint = "run the drill from a checkout (it reads the sample customers and the app/ folder)"


@dataclass
class WrittenData:
    offline_objects: int = 0
    model_packages: int = 0
    app_rows: int = 0


def write_offline_store(ctx: StageContext, root: Path) -> int:
    """The sample customers as the offline store keeps them: hourly partitions under the group's S3 URI."""
    sample = root / SAMPLE
    if not sample.is_file():
        raise DrillDataError(f"{sample}: missing; the drill ingests the sample customers")
    rows = list(csv.DictReader(sample.open(encoding="utf-8")))
    cfg = ctx.stage
    s3 = ctx.client("s3")
    base = f"{DEFAULT_PREFIX}{cfg.account}/sagemaker/{cfg.region}/offline-store/{cfg.feature_group_name}/data"
    size = -(-len(rows) // PARTITIONS)
    for part in range(PARTITIONS):
        chunk = rows[part * size : (part + 1) * size]
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(chunk)
        key = f"{base}/year=2024/month=06/day=01/hour={part:02d}/part-{part:05d}.csv.gz"
        s3.put_object(Bucket=cfg.artifact_bucket_name, Key=key, Body=gzip.compress(out.getvalue().encode(), mtime=0))
    return PARTITIONS


def _artifact(stage: str, version: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        body = json.dumps({"stage": stage, "version": version, "weights": [0.1 * version, -0.4, 0.7]}).encode()
        info = tarfile.TarInfo("model.json")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


def register_models(ctx: StageContext) -> int:
    """Two versions in the stage's group: v1 approved (served), v2 waiting for approval; each with metrics."""
    cfg = ctx.stage
    s3, sm = ctx.client("s3"), ctx.client("sagemaker")
    bucket = cfg.artifact_bucket_name
    for version, approval, auc in ((1, "Approved", 0.81), (2, "PendingManualApproval", 0.84)):
        prefix = f"models/{cfg.stage}/v{version}"
        s3.put_object(Bucket=bucket, Key=f"{prefix}/model.tar.gz", Body=_artifact(cfg.stage, version))
        metrics = {"binary_classification_metrics": {"auc": {"value": auc}}}
        s3.put_object(Bucket=bucket, Key=f"{prefix}/evaluation.json", Body=json.dumps(metrics).encode())
        sm.create_model_package(
            ModelPackageGroupName=cfg.model_package_group_name,
            ModelPackageDescription=f"churn model v{version} (drill)",
            ModelApprovalStatus=approval,
            InferenceSpecification={
                "Containers": [
                    {
                        "Image": "683313688378.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-xgboost:1.7-1",
                        "ModelDataUrl": f"s3://{bucket}/{prefix}/model.tar.gz",
                    }
                ],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
            },
            ModelMetrics={
                "ModelQuality": {
                    "Statistics": {
                        "ContentType": "application/json",
                        "S3Uri": f"s3://{bucket}/{prefix}/evaluation.json",
                    }
                }
            },
        )
    return 2


def _migrate(ctx: StageContext, app_dir: Path, secret_arn: str, work: Path) -> None:
    """The app's own migrations (`python -m prediction_service migrate`), acting in the stage's account."""
    assert ctx.target.endpoint_url is not None
    frozen = ctx.target.session(ctx.stage).get_credentials().get_frozen_credentials()
    aws = {
        "AWS_ACCESS_KEY_ID": frozen.access_key,
        "AWS_SECRET_ACCESS_KEY": frozen.secret_key,
        "AWS_SESSION_TOKEN": frozen.token or "",
        "AWS_ENDPOINT_URL": ctx.target.endpoint_url,
    }
    env = app_environment(
        stage=ctx.stage.stage,
        endpoint_name=ctx.stage.endpoint_name,
        region=ctx.stage.region,
        secret_arn=secret_arn,
        model_id="drill",
        port=free_port(),
        trace_file=work / "spans.jsonl",
        aws=aws,
    )
    env["PYTHONPATH"] = str(app_dir.resolve())
    work.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "prediction_service", "migrate"],
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise DrillDataError(f"{app_dir}: the app's migrations failed: {last[:140]}")


def write_app_rows(ctx: StageContext, postgres: ThrowawayPostgres, app_dir: Path, work: Path) -> int:
    """The stage's app database (as the App stack makes it), migrated by the app, with predictions and feedback."""
    if not (app_dir / "prediction_service" / "__main__.py").is_file():
        raise DrillDataError(f"{app_dir}: no prediction_service package (the app/ folder of a checkout)")
    account = postgres.create_account(username=f"app_{ctx.stage.stage}", dbname=f"predictions_{ctx.stage.stage}")
    secret_arn = ensure_secret(ctx.client("secretsmanager"), app_db_secret_name(ctx), account)
    _migrate(ctx, app_dir, secret_arn, work)
    postgres.psql(
        "INSERT INTO predictions (id, request, answer, churn_probability, churned, model_id, endpoint_name, latency_ms)"
        " SELECT gen_random_uuid(), jsonb_build_object('customer_id', 'C' || lpad(i::text, 5, '0')),"
        " jsonb_build_object('p', i / 100.0), i / 100.0, (i % 2), 'drill-v1', "
        f"'{ctx.stage.endpoint_name}', 10 + i FROM generate_series(1, {PREDICTIONS}) AS i",
        dbname=account.dbname,
        user=account.username,
        password=account.password,
    )
    postgres.psql(
        f"INSERT INTO feedback (prediction_id, true_label) SELECT id, churned FROM predictions LIMIT {FEEDBACK}",
        dbname=account.dbname,
        user=account.username,
        password=account.password,
    )
    return PREDICTIONS + FEEDBACK


def drop_app_database(postgres: ThrowawayPostgres, ctx: StageContext) -> None:
    """The wipe's share of the database: the instance is gone; the release re-creates an empty one."""
    owner, dbname = f"app_{ctx.stage.stage}", f"predictions_{ctx.stage.stage}"
    postgres.psql(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
    postgres.psql(f"CREATE DATABASE {dbname} OWNER {owner}")
    postgres.set_password(owner)  # the old credential died with the account


def password_resetter(postgres: ThrowawayPostgres, ctx: StageContext) -> Any:
    """reset(username) -> the RDS-shaped secret of a fresh password on the stage's database (StageContext hook)."""

    def reset(username: str) -> dict[str, Any]:
        return {
            "engine": "postgres",
            "username": username,
            "password": postgres.set_password(username),
            "host": "127.0.0.1",
            "port": postgres.port,
            "dbname": f"predictions_{ctx.stage.stage}",
        }

    return reset
