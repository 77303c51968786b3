"""The serving app as a local process on the embedded target, and its smoke check.

The app (app/prediction_service) runs as `python -m prediction_service serve`, the container's
command, against the embedded moto server (Secrets Manager, SageMaker) and a throwaway real
PostgreSQL. `smoke_test_embedded` is what `gitops verify` and the rehearsal call: /health answers,
/predict goes through the app to the endpoint to a prediction, and the row is in the database.

moto's InvokeEndpoint runs no model: it answers from a queue of canned bodies. Unless an invoker is
plugged in (APP_INVOKER, e.g. the model's own inference code), the check queues one well-formed
answer there and says so in its result: the path is exercised, the number is not a model's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops.config import StageConfig
from gitops.errors import GitopsError
from gitops.local.embedded import free_port
from gitops.local.postgres import PostgresAccount, ThrowawayPostgres
from gitops.target import Target

APP_IMPORTS = ("fastapi", "uvicorn", "psycopg", "psycopg_pool", "alembic", "opentelemetry.sdk", "prometheus_client")
SMOKE_FEATURES = {
    "tenure_months": 3,
    "monthly_charges": 89.5,
    "total_charges": 268.5,
    "support_calls": 4,
    "contract_months": 1,
    "has_internet": 1,
}
CANNED_PREDICTION = {"predictions": [{"churn_probability": 0.731, "churned": 1}]}


class AppProcessError(GitopsError):
    hint = (
        "see the app's log named in the message; `pip install --require-hashes -r app/requirements.txt` if imports fail"
    )


@dataclass(frozen=True)
class AppCheck:
    """One smoke-check result: what was checked, whether it held, what was seen."""

    name: str
    ok: bool
    detail: str


def http(method: str, url: str, body: dict[str, Any] | None = None, timeout: float = 15.0) -> tuple[int, Any]:
    """(status, parsed JSON or text) of one loopback request; HTTP errors are answers too."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310 (loopback)
            status, raw, ctype = resp.status, resp.read(), resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        status, raw, ctype = exc.code, exc.read(), exc.headers.get("Content-Type", "")
    text = raw.decode("utf-8", "replace")
    return status, (json.loads(text) if "json" in ctype and text else text)


def missing_app_imports(python: str) -> str | None:
    """The first of the app's dependencies `python` cannot import, or None."""
    code = (
        "import importlib,sys\nfor m in sys.argv[1:]:\n"
        " try: importlib.import_module(m)\n except ImportError: print(m); break"
    )
    done = subprocess.run([python, "-c", code, *APP_IMPORTS], capture_output=True, text=True, timeout=60)
    return done.stdout.strip() or None


@dataclass
class RunningApp:
    proc: subprocess.Popen[bytes]
    base_url: str
    log_path: Path
    trace_file: Path
    env: dict[str, str] = field(repr=False)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, as ECS stops a task: uvicorn drains, the lifespan closes the pool. The exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)


def app_environment(
    *,
    stage: str,
    endpoint_name: str,
    region: str,
    secret_arn: str,
    model_id: str,
    port: int,
    trace_file: Path,
    aws: dict[str, str],
) -> dict[str, str]:
    """The app's environment as the App stack's task definition sets it, plus the embedded target's AWS access."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APP_", "AWS_", "OTEL_"))}
    env.update(aws)
    env.update(
        {
            "AWS_REGION": region,
            "APP_STAGE": stage,
            "APP_ENDPOINT_NAME": endpoint_name,
            "APP_DB_SECRET_ARN": secret_arn,
            "APP_MODEL_ID": model_id,
            "APP_HOST": "127.0.0.1",
            "APP_PORT": str(port),
            "APP_TRACE_EXPORTER": "file",
            "APP_TRACE_FILE": str(trace_file),
            "APP_GRACEFUL_SHUTDOWN_S": "5",
        }
    )
    return env


def start_app(
    app_dir: Path, env: dict[str, str], work_dir: Path, *, python: str = sys.executable, timeout: float = 60.0
) -> RunningApp:
    """Start `python -m prediction_service serve` from app_dir (migrate, then serve); wait until it is live."""
    if not (app_dir / "prediction_service" / "__main__.py").is_file():
        raise AppProcessError(f"{app_dir}: no prediction_service package here (the app/ folder of a checkout)")
    missing = missing_app_imports(python)
    if missing:
        raise AppProcessError(f"{python}: the app's dependency {missing} is not installed (app/requirements.txt)")
    work_dir.mkdir(parents=True, exist_ok=True)
    log_path = work_dir / "app.log"
    env = {**env, "PYTHONPATH": str(app_dir.resolve())}
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [python, "-m", "prediction_service", "serve"],
            cwd=work_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    app = RunningApp(proc, f"http://127.0.0.1:{env['APP_PORT']}", log_path, Path(env["APP_TRACE_FILE"]), env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            lines = log_path.read_text(errors="replace").strip().splitlines()
            refusal = next((line for line in reversed(lines) if line.startswith("error: ")), lines[-1] if lines else "")
            raise AppProcessError(
                f"the app exited ({proc.returncode}) before serving: {refusal[:140]} (log: {log_path})"
            )
        try:
            if http("GET", app.base_url + "/health/live", timeout=2)[0] == 200:
                return app
        except OSError:
            pass
        time.sleep(0.2)
    app.stop()
    raise AppProcessError(f"the app did not answer /health/live within {timeout:.0f} s (log: {log_path})")


def queue_canned_answer(moto_url: str, account: str, region: str, body: dict[str, Any]) -> None:
    """Queue one InvokeEndpoint answer in moto (its documented way to script SageMaker runtime answers)."""
    payload = {
        "account_id": account,
        "region": region,
        "results": [{"Body": json.dumps(body), "ContentType": "application/json"}],
    }
    status, answer = http("POST", moto_url + "/moto-api/static/sagemaker/endpoint-results", payload)
    if status != 201 and status != 200:
        raise AppProcessError(f"{moto_url}: moto refused the canned endpoint answer ({status}: {str(answer)[:80]})")


def smoke_check(
    app: RunningApp, postgres: ThrowawayPostgres, account: PostgresAccount, *, canned: bool, endpoint_emulated: bool
) -> list[AppCheck]:
    """/health answers ready; /predict gives a prediction; its row is in the database; its spans are traced.

    endpoint_emulated=False: the target has no SageMaker endpoint to describe (the embedded deploy
    does not emulate it), so /health's endpoint readiness is reported, not required.
    """
    checks: list[AppCheck] = []
    status, health = http("GET", app.base_url + "/health")
    parts = health.get("checks", {}) if isinstance(health, dict) else {}
    detail = "; ".join(f"{name}: {part.get('detail')}" for name, part in parts.items())
    if endpoint_emulated:
        ready = status == 200 and isinstance(health, dict) and health.get("ready") is True
    else:
        ready = status in (200, 503) and parts.get("database", {}).get("ready") is True
        detail += " (endpoint readiness not required: no endpoint is emulated here)"
    checks.append(AppCheck("health", ready, f"{status} {detail or str(health)[:120]}"))
    status, answer = http("POST", app.base_url + "/predict", {"customer_id": "smoke-check", "features": SMOKE_FEATURES})
    predicted = status == 200 and isinstance(answer, dict) and "prediction_id" in answer
    source = "moto's canned answer queued by this check (no model runs there)" if canned else "the plugged-in invoker"
    checks.append(
        AppCheck(
            "predict",
            predicted,
            f"churn_probability {answer['churn_probability']} from {source}, {answer['latency_ms']} ms"
            if predicted
            else f"{status} {str(answer)[:150]}",
        )
    )
    if not predicted:
        return checks
    prediction_id = answer["prediction_id"]
    row = postgres.psql(
        f"SELECT churn_probability, churned, model_id FROM predictions WHERE id = '{prediction_id}'",
        dbname=account.dbname,
        user=account.username,
        password=account.password,
    ).strip()
    expected = f"{answer['churn_probability']}|{answer['churned']}|{answer['model_id']}"
    checks.append(AppCheck("database row", row == expected, f"predictions {prediction_id}: {row or 'no row'}"))
    spans = [json.loads(line) for line in app.trace_file.read_text().splitlines()] if app.trace_file.exists() else []
    names = {s["name"] for s in spans if s.get("attributes", {}).get("prediction.id") == prediction_id}
    trace_ids = {
        s["context"]["trace_id"] for s in spans if s.get("attributes", {}).get("prediction.id") == prediction_id
    }
    in_trace = {s["name"] for s in spans if s["context"]["trace_id"] in trace_ids}
    wanted = {"POST /predict", "sagemaker.InvokeEndpoint", "db.insert predictions"}
    checks.append(
        AppCheck(
            "trace",
            wanted <= in_trace and bool(names),
            f"spans in the prediction's trace: {', '.join(sorted(in_trace)) or 'none'}",
        )
    )
    return checks


def ensure_secret(client: Any, name: str, account: PostgresAccount) -> str:
    """The ARN of a Secrets Manager secret holding the account in the RDS shape (created or updated)."""
    value = json.dumps(account.secret())
    try:
        return str(client.create_secret(Name=name, SecretString=value)["ARN"])
    except client.exceptions.ResourceExistsException:
        client.put_secret_value(SecretId=name, SecretString=value)
        return str(client.describe_secret(SecretId=name)["ARN"])


def smoke_test_embedded(
    app_dir: Path,
    target: Target,
    stage: StageConfig,
    *,
    model_id: str = "unpinned",
    python: str = sys.executable,
    invoker: str | None = None,
    endpoint_emulated: bool = True,
    extra_env: dict[str, str] | None = None,
) -> list[AppCheck]:
    """Start PostgreSQL and the app (from app_dir, a checkout's app/) on the embedded target, check it, tear down.

    The app acts in the stage's account (the deploy role's credentials stand in for its task role).
    A final check records that SIGTERM stopped it cleanly (graceful shutdown, exit status 0).
    """
    if not target.is_local or target.endpoint_url is None or target.local_dir is None:
        raise AppProcessError("smoke_test_embedded runs on the embedded target only (GITOPS_TARGET=local)")
    session = target.session(stage)
    frozen = session.get_credentials().get_frozen_credentials()
    aws = {
        "AWS_ACCESS_KEY_ID": frozen.access_key,
        "AWS_SECRET_ACCESS_KEY": frozen.secret_key,
        "AWS_SESSION_TOKEN": frozen.token or "",
        "AWS_ENDPOINT_URL": target.endpoint_url,
    }
    work_dir = target.local_dir / "app" / stage.stage
    trace_file = work_dir / "spans.jsonl"
    trace_file.unlink(missing_ok=True)
    with ThrowawayPostgres() as postgres:
        account = postgres.create_account()
        secret_arn = ensure_secret(target.client(stage, "secretsmanager", session), f"{stage.prefix}-app-db", account)
        if invoker is None:
            queue_canned_answer(target.endpoint_url, stage.account, stage.region, CANNED_PREDICTION)
        env = app_environment(
            stage=stage.stage,
            endpoint_name=stage.endpoint_name,
            region=stage.region,
            secret_arn=secret_arn,
            model_id=model_id,
            port=free_port(),
            trace_file=trace_file,
            aws=aws,
        )
        if invoker:
            env["APP_INVOKER"] = invoker
        env.update(extra_env or {})
        app = start_app(app_dir, env, work_dir, python=python)
        try:
            checks = smoke_check(app, postgres, account, canned=invoker is None, endpoint_emulated=endpoint_emulated)
        finally:
            code = app.stop()
        stopped = '"message": "stopped"' in app.log_path.read_text(errors="replace")[-4000:]
        # uvicorn re-raises the SIGTERM it handled once it has drained, so -15 is a clean stop too.
        clean = code in (0, -signal.SIGTERM) and stopped
        checks.append(AppCheck("graceful shutdown", clean, f"SIGTERM: exit status {code}, lifespan closed: {stopped}"))
    return checks
