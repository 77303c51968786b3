"""The service against a real PostgreSQL and the moto server: predict, feedback, health, metrics, traces, rotation."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import boto3
import pytest
from conftest import ENDPOINT, FEATURES, MODEL_ID, REGION, AppDatabase, ScriptedInvoker, app_settings, read_spans
from fastapi.testclient import TestClient
from prediction_service.api import create_app
from prediction_service.database import Database
from prediction_service.endpoint import SageMakerInvoker
from prediction_service.migrate import migrate


@pytest.fixture
def migrated(app_db: AppDatabase) -> AppDatabase:
    migrate(app_db.credentials().current())
    return app_db


def _client(app_db: AppDatabase, tmp_path, invoker) -> TestClient:
    settings = app_settings(app_db, tmp_path)
    database = Database(app_db.credentials(), max_size=2, timeout_s=3)
    return TestClient(create_app(settings, invoker=invoker, database=database))


@pytest.fixture
def client(migrated: AppDatabase, tmp_path) -> Iterator[TestClient]:
    with _client(migrated, tmp_path, ScriptedInvoker()) as c:
        yield c


def test_predict_records_request_prediction_model_and_latency(client, migrated):
    answer = client.post("/predict", json={"customer_id": "c-42", "features": FEATURES})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["churn_probability"] == pytest.approx(0.675) and body["churned"] == 1
    assert body["model_id"] == MODEL_ID and body["endpoint"] == ENDPOINT and body["latency_ms"] > 0
    row = migrated.sql(
        f"SELECT request->>'customer_id', request->>'support_calls', churn_probability, churned, model_id, variant, "
        f"latency_ms > 0 FROM predictions WHERE id = '{body['prediction_id']}'"
    )
    assert row == f"c-42|3|0.675|1|{MODEL_ID}|AllTraffic|t"
    assert client.get(f"/predictions/{body['prediction_id']}").json()["request"]["customer_id"] == "c-42"


def test_invalid_features_are_refused_before_the_endpoint_is_called(migrated, tmp_path):
    invoker = ScriptedInvoker()
    with _client(migrated, tmp_path, invoker) as c:
        answer = c.post("/predict", json={"features": {**FEATURES, "contract_months": 7}})
        assert answer.status_code == 422 and "contract_months" in answer.text
        assert c.post("/predict", json={"features": {**FEATURES, "extra": 1}}).status_code == 422
    assert invoker.calls == [] and migrated.sql("SELECT count(*) FROM predictions") == "0"


def test_feedback_records_and_corrects_the_true_label(client, migrated):
    prediction_id = client.post("/predict", json={"features": FEATURES}).json()["prediction_id"]
    assert client.post("/feedback", json={"prediction_id": prediction_id, "true_label": 0}).status_code == 200
    assert client.post("/feedback", json={"prediction_id": prediction_id, "true_label": 1}).status_code == 200
    assert migrated.sql(f"SELECT true_label FROM feedback WHERE prediction_id = '{prediction_id}'") == "1"
    unknown = client.post("/feedback", json={"prediction_id": "00000000-0000-4000-8000-000000000000", "true_label": 1})
    assert unknown.status_code == 404 and "no prediction" in unknown.json()["detail"]
    assert client.post("/feedback", json={"prediction_id": prediction_id, "true_label": 2}).status_code == 422


def test_the_moto_endpoints_canned_bytes_are_refused_not_recorded(migrated, tmp_path, moto_url):
    """moto answers InvokeEndpoint with b"body" and content type "content_type" by default: not a prediction."""
    with _client(migrated, tmp_path, SageMakerInvoker(ENDPOINT, REGION)) as c:
        answer = c.post("/predict", json={"features": {**FEATURES, "tenure_months": 911}})
        assert answer.status_code == 502
        assert "answered 4 bytes of content_type, not application/json: not a prediction" in answer.json()["detail"]
        assert 'app_endpoint_errors_total{reason="not_a_prediction"} 1.0' in c.get("/metrics").text
    assert migrated.sql("SELECT count(*) FROM predictions") == "0"


def test_a_well_formed_endpoint_answer_goes_through_boto3_to_the_database(migrated, tmp_path, moto_url):
    import urllib.request

    canned = {"predictions": [{"churn_probability": 0.42, "churned": 0}]}
    payload = {
        "account_id": "123456789012",
        "region": REGION,
        "results": [{"Body": json.dumps(canned), "ContentType": "application/json"}],
    }
    request = urllib.request.Request(
        moto_url + "/moto-api/static/sagemaker/endpoint-results", data=json.dumps(payload).encode(), method="POST"
    )
    urllib.request.urlopen(request).close()
    with _client(migrated, tmp_path, SageMakerInvoker(ENDPOINT, REGION)) as c:
        answer = c.post("/predict", json={"features": {**FEATURES, "tenure_months": 912}})
    assert answer.status_code == 200, answer.text
    assert migrated.sql("SELECT churn_probability, churned FROM predictions") == "0.42|0"


def test_health_reports_liveness_and_readiness_of_database_and_endpoint(client, migrated, tmp_path, moto_url):
    ready = client.get("/health")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert ready.json()["checks"]["database"]["detail"] == "schema 0002"
    # The real invoker on moto: the endpoint exists there and is InService; an unknown one is not ready.
    assert SageMakerInvoker(ENDPOINT, REGION).readiness().ready
    missing = SageMakerInvoker("no-such-endpoint", REGION).readiness()
    assert not missing.ready and "ValidationException" in missing.detail


def test_health_is_503_while_the_database_is_away_and_live_stays_200(migrated, tmp_path):
    secrets = boto3.client("secretsmanager", region_name=REGION)
    away = {**migrated.account.secret(), "port": 1}  # nothing listens there
    secrets.put_secret_value(SecretId=migrated.secret_arn, SecretString=json.dumps(away))
    with _client(migrated, tmp_path, ScriptedInvoker()) as c:
        health = c.get("/health")
        assert health.status_code == 503 and health.json()["checks"]["database"]["ready"] is False
        assert c.get("/health/live").status_code == 200
        refused = c.post("/predict", json={"features": FEATURES})
        assert refused.status_code == 503 and "database is not available" in refused.json()["detail"]


def test_a_rotated_password_is_read_again_from_the_secret(migrated, tmp_path):
    credentials = migrated.credentials()
    database = Database(credentials, max_size=1, timeout_s=5)
    settings = app_settings(migrated, tmp_path)
    with TestClient(create_app(settings, invoker=ScriptedInvoker(), database=database)) as c:
        assert c.post("/predict", json={"features": FEATURES}).status_code == 200
        reads = credentials.reads
        # Rotation: a new password in the database and in the secret; the old sessions end.
        new = migrated.postgres.set_password(migrated.account.username)
        rotated = {**migrated.account.secret(), "password": new}
        boto3.client("secretsmanager", region_name=REGION).put_secret_value(
            SecretId=migrated.secret_arn, SecretString=json.dumps(rotated)
        )
        migrated.postgres.psql(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{migrated.account.username}'"
        )
        database.pool.check()  # what the pool does on its own schedule: drop the dead connection, reconnect
        answer = c.post("/predict", json={"features": FEATURES})
        assert answer.status_code == 200, answer.text
        assert credentials.reads == reads + 1
    count = migrated.postgres.psql("SELECT count(*) FROM predictions", dbname=migrated.account.dbname)
    assert count.strip() == "2"  # (as the superuser: the test's copy of the app's password is the old one)


def test_metrics_are_prometheus_text(client):
    client.post("/predict", json={"features": FEATURES})
    text = client.get("/metrics")
    assert text.headers["content-type"].startswith("text/plain")
    assert 'app_predictions_total{churned="1"} 1.0' in text.text
    assert 'app_http_requests_total{route="/predict",status="200"} 1.0' in text.text
    assert "app_endpoint_seconds_count 1.0" in text.text


def test_spans_cover_the_request_the_endpoint_call_and_the_database_write(client, tmp_path):
    prediction_id = client.post("/predict", json={"features": FEATURES}).json()["prediction_id"]
    spans = read_spans(tmp_path / "spans.jsonl")
    db = next(s for s in spans if s["attributes"].get("prediction.id") == prediction_id)
    trace = [s for s in spans if s["context"]["trace_id"] == db["context"]["trace_id"]]
    by_name = {s["name"]: s for s in trace}
    assert set(by_name) == {"POST /predict", "sagemaker.InvokeEndpoint", "db.insert predictions"}
    root = by_name["POST /predict"]
    assert root["parent_id"] is None and root["kind"] == "SpanKind.SERVER"
    for child in ("sagemaker.InvokeEndpoint", "db.insert predictions"):
        assert by_name[child]["parent_id"] == root["context"]["span_id"]
    assert by_name["sagemaker.InvokeEndpoint"]["attributes"]["aws.sagemaker.endpoint_name"] == ENDPOINT
    assert root["resource"]["attributes"]["service.name"] == "prediction-service"
    # X-Ray's trace id format: the first 8 hex digits are the trace's start in epoch seconds.
    assert abs(int(root["context"]["trace_id"][2:10], 16) - time.time()) < 600


def test_a_callers_trace_context_is_continued(client, tmp_path):
    trace_id = f"{int(time.time()):08x}" + "ab" * 12
    headers = {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
    client.post("/predict", json={"features": FEATURES}, headers=headers)
    root = next(s for s in read_spans(tmp_path / "spans.jsonl") if s["name"] == "POST /predict")
    assert root["context"]["trace_id"] == "0x" + trace_id and root["parent_id"] == "0x00f067aa0ba902b7"
