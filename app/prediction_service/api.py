"""The HTTP surface: /predict, /feedback, /health, /metrics and the operator page at /."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal

import psycopg
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from opentelemetry import propagate
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from psycopg_pool import PoolTimeout
from pydantic import BaseModel, ConfigDict, Field

from prediction_service.database import Database
from prediction_service.endpoint import CONTENT_TYPE, EndpointInvoker, parse_prediction, request_body
from prediction_service.errors import EndpointAnswerError
from prediction_service.metrics import ServiceMetrics
from prediction_service.page import render_page
from prediction_service.settings import Settings
from prediction_service.telemetry import tracer_provider

log = logging.getLogger("prediction_service")
DB_ERRORS = (psycopg.Error, PoolTimeout)
UUID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class Features(BaseModel):
    """The model's inputs (pipeline_defs/features.py MODEL_INPUTS; a test keeps the two equal)."""

    model_config = ConfigDict(extra="forbid")

    tenure_months: int = Field(ge=0, le=1200)
    monthly_charges: float = Field(ge=0)
    total_charges: float = Field(ge=0)
    support_calls: int = Field(ge=0)
    contract_months: Literal[1, 12, 24]
    has_internet: Literal[0, 1]


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: str | None = Field(default=None, max_length=128)
    features: Features


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prediction_id: str = Field(pattern=UUID_PATTERN.pattern)
    true_label: Literal[0, 1]


def create_app(settings: Settings, *, invoker: EndpointInvoker, database: Database) -> FastAPI:
    """The app over one invoker and one database; the lifespan opens and closes the pool."""
    metrics = ServiceMetrics()
    provider = tracer_provider(settings)
    tracer = provider.get_tracer("prediction_service")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        database.open()
        log.info(
            "started", extra={"stage": settings.stage, "endpoint": invoker.endpoint_name, "model_id": settings.model_id}
        )
        try:
            yield
        finally:  # uvicorn has drained the in-flight requests (SIGTERM, graceful shutdown) by now
            database.close()
            provider.shutdown()
            log.info("stopped")

    app = FastAPI(title="prediction-service", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.metrics = metrics

    @app.middleware("http")
    async def trace_and_measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        parent = propagate.extract(dict(request.headers))  # a caller's W3C traceparent continues its trace
        name = f"{request.method} {request.url.path}"
        with tracer.start_as_current_span(name, context=parent, kind=SpanKind.SERVER) as span:
            span.set_attribute("http.request.method", request.method)
            span.set_attribute("url.path", request.url.path)
            response = await call_next(request)
            route = getattr(request.scope.get("route"), "path", "unmatched")
            span.update_name(f"{request.method} {route}")
            span.set_attribute("http.route", route)
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500:
                span.set_status(Status(StatusCode.ERROR))
            elapsed = time.perf_counter() - started
            metrics.requests.labels(route, str(response.status_code)).inc()
            metrics.request_seconds.labels(route).observe(elapsed)
            log.info(
                "request",
                extra={
                    "method": request.method,
                    "route": route,
                    "status": response.status_code,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
        return response

    def health_report() -> dict[str, Any]:
        checks: dict[str, dict[str, Any]] = {}
        try:
            checks["database"] = {"ready": True, "detail": f"schema {database.ping()}"}
        except DB_ERRORS as exc:
            checks["database"] = {
                "ready": False,
                "detail": str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__,
            }
        endpoint = invoker.readiness()
        checks["endpoint"] = {"ready": endpoint.ready, "detail": f"{invoker.endpoint_name}: {endpoint.detail}"}
        return {"live": True, "ready": all(c["ready"] for c in checks.values()), "checks": checks}

    @app.get("/health/live")
    def live() -> dict[str, bool]:
        """Liveness only (the container HEALTHCHECK): the process serves requests."""
        return {"live": True}

    @app.get("/health")
    def health() -> JSONResponse:
        """Liveness plus readiness of the database and the endpoint; 503 while either is not ready."""
        report = health_report()
        return JSONResponse(report, status_code=200 if report["ready"] else 503)

    @app.post("/predict")
    def predict(body: PredictRequest) -> dict[str, Any]:
        features = body.features.model_dump()
        started = time.perf_counter()
        with tracer.start_as_current_span("sagemaker.InvokeEndpoint", kind=SpanKind.CLIENT) as span:
            span.set_attribute("aws.sagemaker.endpoint_name", invoker.endpoint_name)
            try:
                answer = invoker.invoke(request_body(features), CONTENT_TYPE)
                prediction = parse_prediction(answer)
            except EndpointAnswerError as exc:
                metrics.endpoint_errors.labels("not_a_prediction").inc()
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                log.warning("endpoint answer refused", extra={"reason": str(exc)})
                raise HTTPException(502, f"{invoker.endpoint_name}: {exc}") from None
            except Exception as exc:  # botocore's errors, the invoker's own: the endpoint did not answer
                metrics.endpoint_errors.labels("call_failed").inc()
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                log.warning("endpoint call failed", extra={"error": str(exc)[:300]})
                raise HTTPException(
                    502, f"{invoker.endpoint_name}: the endpoint call failed: {str(exc)[:160]}"
                ) from None
            if answer.variant:
                span.set_attribute("aws.sagemaker.invoked_variant", answer.variant)
        latency_ms = (time.perf_counter() - started) * 1000
        metrics.endpoint_seconds.observe(latency_ms / 1000)
        with tracer.start_as_current_span("db.insert predictions", kind=SpanKind.CLIENT) as span:
            span.set_attribute("db.system.name", "postgresql")
            span.set_attribute("db.operation.name", "INSERT")
            try:
                recorded = database.record_prediction(
                    request={"customer_id": body.customer_id, **features},
                    answer=prediction,
                    probability=prediction["churn_probability"],
                    churned=prediction["churned"],
                    model_id=settings.model_id,
                    endpoint_name=invoker.endpoint_name,
                    variant=answer.variant,
                    latency_ms=latency_ms,
                )
            except DB_ERRORS as exc:
                metrics.db_errors.labels("record_prediction").inc()
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                log.error("prediction not recorded", extra={"error": str(exc)[:300]})
                raise HTTPException(
                    503, "the prediction could not be recorded: the database is not available"
                ) from None
            span.set_attribute("prediction.id", recorded.id)
        metrics.predictions.labels(str(prediction["churned"])).inc()
        return {
            "prediction_id": recorded.id,
            **prediction,
            "model_id": settings.model_id,
            "endpoint": invoker.endpoint_name,
            "latency_ms": round(latency_ms, 2),
        }

    @app.post("/feedback")
    def feedback(body: FeedbackRequest) -> dict[str, Any]:
        with tracer.start_as_current_span("db.insert feedback", kind=SpanKind.CLIENT):
            try:
                found = database.record_feedback(body.prediction_id, body.true_label)
            except DB_ERRORS as exc:
                metrics.db_errors.labels("record_feedback").inc()
                raise HTTPException(503, "the feedback could not be recorded: the database is not available") from exc
        if not found:
            raise HTTPException(404, f"no prediction {body.prediction_id}")
        metrics.feedback.inc()
        return {"prediction_id": body.prediction_id, "true_label": body.true_label}

    @app.get("/predictions/{prediction_id}")
    def read_prediction(prediction_id: str) -> dict[str, Any]:
        """The stored row of one prediction: lets a remote smoke check see what the database holds."""
        if not UUID_PATTERN.match(prediction_id):
            raise HTTPException(404, f"no prediction {prediction_id[:40]}")
        try:
            row = database.prediction(prediction_id)
        except DB_ERRORS as exc:
            raise HTTPException(503, "the database is not available") from exc
        if row is None:
            raise HTTPException(404, f"no prediction {prediction_id}")
        return row

    @app.get("/metrics")
    def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", response_class=HTMLResponse)
    def page() -> HTMLResponse:
        report = health_report()
        try:
            recent, summary = database.recent(20), database.summary()
        except DB_ERRORS:
            recent, summary = [], {}
        html = render_page(
            stage=settings.stage,
            endpoint_name=invoker.endpoint_name,
            model_id=settings.model_id,
            recent=recent,
            summary=summary,
            health=report,
        )
        return HTMLResponse(html)

    return app
