"""The call to the stage's model: an invoker (SageMaker InvokeEndpoint, or one plugged in) and the answer's check.

The request is what the model's inference code takes (application/json {"instances": [...]});
the answer must be what it returns ({"predictions": [{"churn_probability", "churned"}]}). Anything
else (moto's canned "body" included) is refused as not a prediction, never stored as one.
"""

from __future__ import annotations

import importlib
import json
import math
from dataclasses import dataclass
from typing import Any, Protocol

from prediction_service.errors import EndpointAnswerError, SettingsError
from prediction_service.settings import Settings

CONTENT_TYPE = "application/json"


@dataclass(frozen=True)
class EndpointAnswer:
    body: bytes
    content_type: str
    variant: str | None = None  # the production variant that answered, where the invoker knows it


@dataclass(frozen=True)
class Readiness:
    ready: bool
    detail: str


class EndpointInvoker(Protocol):
    """What the app needs of a model endpoint; the embedded target may plug in another one."""

    endpoint_name: str

    def invoke(self, body: bytes, content_type: str) -> EndpointAnswer: ...

    def readiness(self) -> Readiness: ...


class SageMakerInvoker:
    """InvokeEndpoint on the stage's endpoint (AWS_ENDPOINT_URL points boto3 at the embedded server)."""

    def __init__(self, endpoint_name: str, region: str, timeout_s: float = 10.0) -> None:
        import boto3
        from botocore.config import Config

        config = Config(connect_timeout=min(timeout_s, 3), read_timeout=timeout_s, retries={"max_attempts": 2})
        self.endpoint_name = endpoint_name
        self._runtime = boto3.client("sagemaker-runtime", region_name=region, config=config)
        self._control = boto3.client("sagemaker", region_name=region, config=config)

    def invoke(self, body: bytes, content_type: str) -> EndpointAnswer:
        answer = self._runtime.invoke_endpoint(
            EndpointName=self.endpoint_name, Body=body, ContentType=content_type, Accept=CONTENT_TYPE
        )
        return EndpointAnswer(
            answer["Body"].read(), answer.get("ContentType", ""), answer.get("InvokedProductionVariant")
        )

    def readiness(self) -> Readiness:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            status = self._control.describe_endpoint(EndpointName=self.endpoint_name)["EndpointStatus"]
        except ClientError as exc:
            return Readiness(False, f"DescribeEndpoint: {exc.response.get('Error', {}).get('Code', exc)}")
        except BotoCoreError as exc:
            return Readiness(False, f"DescribeEndpoint: {exc}")
        return Readiness(status == "InService", status)


def build_invoker(settings: Settings) -> EndpointInvoker:
    """The invoker APP_INVOKER names: "sagemaker", or "package.module:factory" called with the settings."""
    if settings.invoker == "sagemaker":
        return SageMakerInvoker(settings.endpoint_name, settings.region, settings.endpoint_timeout_s)
    module_name, _, attr = settings.invoker.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise SettingsError(f"APP_INVOKER {settings.invoker!r} cannot be imported: {exc}") from None
    invoker: EndpointInvoker = factory(settings)
    return invoker


def request_body(features: dict[str, Any]) -> bytes:
    return json.dumps({"instances": [features]}).encode()


def parse_prediction(answer: EndpointAnswer) -> dict[str, Any]:
    """The one prediction in the answer ({"churn_probability", "churned"}), or EndpointAnswerError saying why not."""
    shown = f"{len(answer.body)} bytes of {answer.content_type or 'no content type'}"
    if not answer.content_type.lower().startswith(CONTENT_TYPE):
        raise EndpointAnswerError(f"the endpoint answered {shown}, not {CONTENT_TYPE}: not a prediction")
    try:
        data = json.loads(answer.body)
        first = data["predictions"][0]
        probability = float(first["churn_probability"])
        churned = int(first["churned"])
    except (ValueError, KeyError, IndexError, TypeError):
        raise EndpointAnswerError(f"the endpoint answered {shown} without predictions[0].churn_probability") from None
    if not (0.0 <= probability <= 1.0) or math.isnan(probability) or churned not in (0, 1):
        raise EndpointAnswerError(f"the endpoint answered an impossible prediction: {first!r}"[:200])
    return {"churn_probability": probability, "churned": churned}
