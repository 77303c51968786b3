"""Call the served model with the release's sample records and check the answer's shape and latency.

On AWS: InvokeEndpoint on the stage's endpoint. On the embedded target moto answers InvokeEndpoint
with canned bytes, so there the model's own serving code (code/inference.py inside the pinned
model.tar.gz) runs on the pinned artifact in this process, and the result says that is what ran.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops.model.pin import SampleRequest

SERVING_PYTHON_ENV = "GITOPS_SERVING_PYTHON"
CONTENT_TYPE = "text/csv"
ACCEPT = "application/json"


class MalformedPrediction(ValueError):
    """The model's answer does not have the promised shape."""


@dataclass
class PredictionCheck:
    ok: bool
    how: str  # "InvokeEndpoint <name>" | "local: code/inference.py of the pinned artifact (embedded target)"
    detail: str
    latency_ms: float | None = None
    skipped: bool = False


def check_predictions(body: bytes, rows: int) -> list[dict]:
    """{"predictions": [{"churn_probability": p in [0, 1], "churned": 0|1}, ...]}, one per row sent."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedPrediction(f"not JSON ({str(exc)[:60]})") from exc
    predictions = doc.get("predictions") if isinstance(doc, dict) else None
    if not isinstance(predictions, list):
        raise MalformedPrediction("no 'predictions' list in the response")
    if len(predictions) != rows:
        raise MalformedPrediction(f"{len(predictions)} predictions for {rows} records")
    for i, item in enumerate(predictions):
        p = item.get("churn_probability") if isinstance(item, dict) else None
        label = item.get("churned") if isinstance(item, dict) else None
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
            raise MalformedPrediction(f"prediction {i}: churn_probability {p!r} is not a probability")
        if label not in (0, 1) or isinstance(label, bool):
            raise MalformedPrediction(f"prediction {i}: churned {label!r} is not 0 or 1")
        if label != int(p >= 0.5):
            raise MalformedPrediction(f"prediction {i}: churned {label} disagrees with probability {p}")
    return predictions


def _judge(how: str, body: bytes, sample: SampleRequest, latency_ms: float, limit_ms: int) -> PredictionCheck:
    try:
        predictions = check_predictions(body, len(sample.rows))
    except MalformedPrediction as exc:
        return PredictionCheck(False, how, f"malformed prediction: {exc}", round(latency_ms, 1))
    shown = ", ".join(f"{p['churn_probability']:.3f}" for p in predictions[:3])
    if latency_ms > limit_ms:
        return PredictionCheck(
            False, how, f"{len(predictions)} predictions in {latency_ms:.0f} ms, over {limit_ms} ms", latency_ms
        )
    detail = f"{len(predictions)} predictions ({shown}…) in {latency_ms:.0f} ms (limit {limit_ms} ms)"
    return PredictionCheck(True, how, detail, round(latency_ms, 1))


def call_endpoint(runtime: Any, endpoint_name: str, sample: SampleRequest, limit_ms: int) -> PredictionCheck:
    """InvokeEndpoint with the sample as CSV; errors of the call are a failed check, not an exception."""
    from gitops.deploy.aws import AWS_ERRORS
    from gitops.errors import aws_error_text

    how = f"InvokeEndpoint {endpoint_name}"
    started = time.perf_counter()
    try:
        response = runtime.invoke_endpoint(
            EndpointName=endpoint_name, ContentType=CONTENT_TYPE, Accept=ACCEPT, Body=sample.csv()
        )
        body = response["Body"].read()
    except AWS_ERRORS as exc:
        return PredictionCheck(False, how, f"the call failed: {aws_error_text(exc)}")
    return _judge(how, body, sample, (time.perf_counter() - started) * 1000, limit_ms)


# Run by the serving interpreter: the artifact's own code/inference.py, called as the serving container calls it.
_SERVE = """
import importlib.util, json, sys, time
model_dir = sys.argv[1]
spec = importlib.util.spec_from_file_location("inference", model_dir + "/code/inference.py")
module = importlib.util.module_from_spec(spec)
try:
    spec.loader.exec_module(module)
    model = module.model_fn(model_dir)
except ImportError as exc:
    print(json.dumps({"missing": exc.name}))
    sys.exit(0)
body = sys.stdin.buffer.read()
started = time.perf_counter()
answer, _ = module.output_fn(module.predict_fn(module.input_fn(body, sys.argv[2]), model), sys.argv[3])
latency = (time.perf_counter() - started) * 1000
print(json.dumps({"body": answer if isinstance(answer, str) else answer.decode(), "latency_ms": latency}))
"""


def serving_python() -> str:
    """The interpreter standing in for the serving container: GITOPS_SERVING_PYTHON, else this one."""
    return os.environ.get(SERVING_PYTHON_ENV) or sys.executable


def run_locally(artifact: bytes, sample: SampleRequest, limit_ms: int) -> PredictionCheck:
    """The artifact's own code/inference.py on its own model, as the serving container would call it."""
    how = "local: code/inference.py of the pinned artifact (embedded target; moto cannot run a model)"
    with tempfile.TemporaryDirectory(prefix="gitops-model-") as tmp:
        model_dir = Path(tmp)
        try:
            with tarfile.open(fileobj=io.BytesIO(artifact), mode="r:gz") as tar:
                tar.extractall(model_dir, filter="data")
        except (tarfile.TarError, OSError) as exc:
            return PredictionCheck(False, how, f"model.tar.gz does not unpack: {exc}")
        if not (model_dir / "code" / "inference.py").is_file():
            return PredictionCheck(False, how, "model.tar.gz holds no code/inference.py")
        try:
            done = subprocess.run(
                [serving_python(), "-c", _SERVE, str(model_dir), CONTENT_TYPE, ACCEPT],
                input=sample.csv(),
                capture_output=True,
                timeout=300,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return PredictionCheck(False, how, f"the serving code did not run: {exc}")
    if done.returncode != 0:
        last = (done.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        return PredictionCheck(False, how, f"the serving code failed: {last[:160]}")
    try:
        result = json.loads((done.stdout.decode(errors="replace").strip().splitlines() or ["{}"])[-1])
        if not isinstance(result, dict) or not ("missing" in result or "body" in result):
            raise ValueError("no answer")
    except ValueError:
        return PredictionCheck(False, how, "the serving code printed no answer")
    if "missing" in result:
        detail = f"not run: the serving code needs {result['missing']}; set {SERVING_PYTHON_ENV} to a Python with it"
        return PredictionCheck(True, how, detail, skipped=True)
    return _judge(how, result["body"].encode(), sample, float(result["latency_ms"]), limit_ms)
