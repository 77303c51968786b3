"""Units of the serving app: settings, the secret's shape, the endpoint's answer, the invoker plug, the logs."""

from __future__ import annotations

import json
import logging
import sys

import pytest
from botocore.stub import Stubber
from conftest import ROOT
from prediction_service.api import Features
from prediction_service.credentials import SecretCredentials, parse_secret
from prediction_service.endpoint import EndpointAnswer, SageMakerInvoker, build_invoker, parse_prediction
from prediction_service.errors import EndpointAnswerError, SecretError, SettingsError
from prediction_service.json_logging import JsonFormatter
from prediction_service.settings import load_settings

ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:app-db-AbCdEf"
NOT_AN_ARN = "app-db"  # a secret's name where its ARN belongs
BASE = {"stage": "dev", "endpoint_name": "mlops-dev-endpoint", "db_secret_arn": ARN, "region": "eu-west-1"}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for key in (
        "APP_STAGE",
        "APP_ENDPOINT_NAME",
        "APP_DB_SECRET_ARN",
        "APP_TRACE_EXPORTER",
        "APP_PORT",
        "APP_REGION",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
    ):
        monkeypatch.delenv(key, raising=False)


def test_settings_come_from_the_environment(monkeypatch):
    for key, value in {
        "APP_STAGE": "prod",
        "APP_ENDPOINT_NAME": "mlops-prod-endpoint",
        "APP_DB_SECRET_ARN": ARN,
        "AWS_REGION": "eu-west-1",
        "APP_PORT": "9000",
    }.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    assert (settings.stage, settings.endpoint_name, settings.port, settings.region) == (
        "prod",
        "mlops-prod-endpoint",
        9000,
        "eu-west-1",
    )
    assert settings.trace_exporter == "otlp" and settings.invoker == "sagemaker"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"endpoint_name": None}, "APP_ENDPOINT_NAME is not set (set it in the task's environment)"),
        ({"region": None}, "AWS_REGION is not set"),
        ({"db_secret_arn": NOT_AN_ARN}, "APP_DB_SECRET_ARN must be a Secrets Manager secret ARN"),
        ({"port": "eighty"}, "APP_PORT Input should be a valid integer"),
        ({"trace_exporter": "file"}, "APP_TRACE_FILE must name a file when APP_TRACE_EXPORTER is file"),
    ],
)
def test_bad_settings_are_one_line_naming_the_variable(overrides, expected):
    values = {**BASE, **overrides}
    with pytest.raises(SettingsError) as refused:
        load_settings(**{k: v for k, v in values.items() if v is not None})
    assert str(refused.value).startswith(expected) and "\n" not in str(refused.value)


def test_the_rds_secret_shape_is_read_and_its_gaps_named():
    good = {
        "username": "app",
        "password": "p",
        "host": "db.internal",
        "port": "5432",
        "dbname": "predictions",
        "engine": "postgres",
    }
    creds = parse_secret(ARN, json.dumps(good))
    assert creds.port == 5432 and creds.connect_kwargs()["user"] == "app"
    assert "p" not in repr(creds).replace("app@", "").replace("predictions", "")  # the password is never shown
    with pytest.raises(SecretError, match=r"the secret lacks password, dbname \(the RDS secret shape\)"):
        parse_secret(ARN, json.dumps({**good, "password": "", "dbname": None}))
    with pytest.raises(SecretError, match="is not JSON"):
        parse_secret(ARN, "postgres://app:p@db/predictions")
    with pytest.raises(SecretError, match="port 'x' is not a number"):
        parse_secret(ARN, json.dumps({**good, "port": "x"}))


def test_a_denied_secret_names_the_permission_the_task_role_lacks():
    import boto3

    client = boto3.client("secretsmanager", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        stub.add_client_error("get_secret_value", "AccessDeniedException", "denied", expected_params={"SecretId": ARN})
        with pytest.raises(SecretError, match="the task role needs GetSecretValue on it"):
            SecretCredentials(client, ARN).current()


def _answer(body: object, content_type: str = "application/json") -> EndpointAnswer:
    return EndpointAnswer(json.dumps(body).encode() if not isinstance(body, bytes) else body, content_type)


def test_only_a_prediction_is_taken_from_the_endpoint():
    assert parse_prediction(_answer({"predictions": [{"churn_probability": 0.83, "churned": 1}]})) == {
        "churn_probability": 0.83,
        "churned": 1,
    }
    refusals = {
        "not application/json": _answer(b"body", "text/xml"),
        "without predictions[0].churn_probability": _answer({"predictions": []}),
        "impossible prediction": _answer({"predictions": [{"churn_probability": 1.7, "churned": 1}]}),
    }
    for reason, answer in refusals.items():
        with pytest.raises(EndpointAnswerError, match=reason.replace("[", r"\[").replace("]", r"\]")):
            parse_prediction(answer)


def test_the_sagemaker_invoker_sends_what_the_model_takes_and_reads_the_variant():
    invoker = SageMakerInvoker("mlops-dev-endpoint", "eu-west-1")
    import io

    from botocore.response import StreamingBody

    raw = b'{"predictions": [{"churn_probability": 0.2, "churned": 0}]}'
    with Stubber(invoker._runtime) as stub:
        stub.add_response(
            "invoke_endpoint",
            {
                "Body": StreamingBody(io.BytesIO(raw), len(raw)),
                "ContentType": "application/json",
                "InvokedProductionVariant": "AllTraffic",
            },
            {
                "EndpointName": "mlops-dev-endpoint",
                "Body": b'{"instances": [{"a": 1}]}',
                "ContentType": "application/json",
                "Accept": "application/json",
            },
        )
        answer = invoker.invoke(b'{"instances": [{"a": 1}]}', "application/json")
    assert answer.variant == "AllTraffic" and parse_prediction(answer)["churned"] == 0


def test_another_invoker_plugs_in_by_import_path_and_a_bad_one_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "local_model_invoker.py").write_text(
        "class Local:\n    endpoint_name = 'local'\n    def __init__(self, settings): self.stage = settings.stage\n"
        "def make(settings):\n    return Local(settings)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    plugged = build_invoker(load_settings(**BASE, invoker="local_model_invoker:make"))
    assert type(plugged).__name__ == "Local" and plugged.endpoint_name == "local"
    with pytest.raises(SettingsError, match="APP_INVOKER 'no_such_module:make' cannot be imported"):
        build_invoker(load_settings(**BASE, invoker="no_such_module:make"))


def test_the_apps_inputs_are_the_models_inputs(monkeypatch):
    """The image carries no pipeline_defs/: this keeps its copy of the feature list equal to the source."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("features", ROOT / "pipeline_defs" / "features.py")
    assert spec and spec.loader
    features = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "features", features)  # its dataclasses look themselves up there
    spec.loader.exec_module(features)
    assert tuple(Features.model_fields) == features.MODEL_INPUTS


def test_log_lines_are_json_with_the_extra_fields():
    record = logging.LogRecord("prediction_service", logging.INFO, __file__, 1, "request", None, None)
    record.route, record.status = "/predict", 200
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "request" and line["route"] == "/predict" and line["status"] == 200
    assert line["level"] == "INFO" and line["time"].endswith("+00:00")
