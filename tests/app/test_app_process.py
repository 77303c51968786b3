"""The app as a local process on the embedded target: the smoke check `gitops verify` and the rehearsal call."""

from __future__ import annotations

import json

import pytest
from conftest import FAKE_KEYS, ROOT

from gitops.config import load_stages
from gitops.local.app_process import AppProcessError, app_environment, smoke_test_embedded, start_app
from gitops.local.postgres import INSTALL_HINT, PostgresMissing, ThrowawayPostgres, find_postgres_bin
from gitops.target import Target


@pytest.fixture
def embedded(moto_url, tmp_path):
    stage = load_stages(ROOT)["dev"]
    target = Target("local", tmp_path / "local", moto_url)
    sm = target.client(stage, "sagemaker")
    sm.create_model(
        ModelName="churn",
        ExecutionRoleArn=f"arn:aws:iam::{stage.account}:role/sm",
        PrimaryContainer={"Image": f"{stage.account}.dkr.ecr.{stage.region}.amazonaws.com/sklearn:1"},
    )
    sm.create_endpoint_config(
        EndpointConfigName="churn-1",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "churn",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    sm.create_endpoint(EndpointName=stage.endpoint_name, EndpointConfigName="churn-1")
    return target, stage


def test_the_smoke_check_passes_end_to_end_and_says_where_the_prediction_came_from(embedded, postgres):
    target, stage = embedded
    checks = smoke_test_embedded(ROOT / "app", target, stage, model_id="churn-model-7")
    by_name = {c.name: c for c in checks}
    assert list(by_name) == ["health", "predict", "database row", "trace", "graceful shutdown"]
    assert all(c.ok for c in checks), checks
    assert f"endpoint: {stage.endpoint_name}: InService" in by_name["health"].detail
    assert "moto's canned answer queued by this check (no model runs there)" in by_name["predict"].detail
    assert by_name["database row"].detail.endswith("|churn-model-7")
    log = (target.local_dir / "app" / "dev" / "app.log").read_text().splitlines()
    assert all(json.loads(line) for line in log)  # structured logs only, every line


def test_a_missing_endpoint_fails_health_unless_the_target_emulates_none(moto_url, tmp_path, postgres):
    stage = load_stages(ROOT)["prod"]  # nothing deployed for prod on this moto server
    target = Target("local", tmp_path / "local", moto_url)
    checks = {c.name: c for c in smoke_test_embedded(ROOT / "app", target, stage)}
    assert checks["health"].ok is False and "ValidationException" in checks["health"].detail
    unemulated = smoke_test_embedded(ROOT / "app", target, stage, endpoint_emulated=False)
    health = next(c for c in unemulated if c.name == "health")
    assert health.ok and health.detail.startswith("503 database: schema 0002")
    assert "endpoint readiness not required: no endpoint is emulated here" in health.detail


ABSENT_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:absent-AbCdEf"


def test_an_app_that_cannot_start_is_reported_with_its_own_refusal(moto_url, tmp_path):
    env = app_environment(
        stage="dev",
        endpoint_name="e",
        region="eu-west-1",
        port=1,
        model_id="m",
        trace_file=tmp_path / "s.jsonl",
        secret_arn=ABSENT_ARN,
        aws={**FAKE_KEYS, "AWS_ENDPOINT_URL": moto_url},
    )
    with pytest.raises(AppProcessError) as refused:
        start_app(ROOT / "app", env, tmp_path / "work")
    assert "the app exited (1) before serving: error: arn:aws:secretsmanager" in str(refused.value)
    assert "no such secret in Secrets Manager" in str(refused.value)


def test_no_postgres_binaries_says_what_to_install(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr("gitops.local.postgres.SEARCH_GLOBS", ("/nonexistent/*/bin",))
    with pytest.raises(PostgresMissing) as missing:
        find_postgres_bin()
    assert missing.value.hint == INSTALL_HINT and "apt-get install postgresql" in INSTALL_HINT


def test_the_throwaway_cluster_leaves_nothing_behind(postgres):
    with ThrowawayPostgres(postgres.bin_dir) as extra:
        root = extra.root
        assert root is not None and (root / "data" / "PG_VERSION").is_file()
        assert extra.psql("SELECT 1").strip() == "1"
    assert not root.exists()
