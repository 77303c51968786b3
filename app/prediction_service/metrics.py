"""Prometheus metrics of one app instance (its own registry, served at GET /metrics)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class ServiceMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "app_http_requests", "HTTP requests by route and status", ["route", "status"], registry=r
        )
        self.request_seconds = Histogram(
            "app_http_request_seconds", "HTTP request latency", ["route"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.endpoint_seconds = Histogram(
            "app_endpoint_seconds", "InvokeEndpoint latency", buckets=LATENCY_BUCKETS, registry=r
        )
        self.endpoint_errors = Counter(
            "app_endpoint_errors", "Endpoint calls that gave no prediction", ["reason"], registry=r
        )
        self.predictions = Counter(
            "app_predictions", "Predictions recorded, by predicted class", ["churned"], registry=r
        )
        self.db_errors = Counter("app_db_errors", "Database operations that failed", ["operation"], registry=r)
        self.feedback = Counter("app_feedback", "True labels recorded", registry=r)
