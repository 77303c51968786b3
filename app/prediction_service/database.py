"""PostgreSQL access: a connection pool whose credentials follow the secret, and the app's queries."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from prediction_service.credentials import SecretCredentials

# SQLSTATE class 28: invalid authorization (28P01: wrong password). On connect psycopg may carry
# no SQLSTATE, only the server's message, so both are looked at.
AUTH_FAILURE_TEXT = ("password authentication failed", "authentication failed")


def auth_refused(exc: psycopg.OperationalError) -> bool:
    """True if the server refused the credentials (as after a rotation), not any other failure."""
    state = getattr(exc, "sqlstate", None) or ""
    return state.startswith("28") or any(text in str(exc) for text in AUTH_FAILURE_TEXT)


def rotating_connection_class(credentials: SecretCredentials) -> type[psycopg.Connection]:
    """A connection class that connects with the secret's credentials, re-read once if refused."""

    class RotatingConnection(psycopg.Connection):
        @classmethod
        def connect(cls, conninfo: str = "", **kwargs: Any) -> RotatingConnection:
            try:
                return super().connect(conninfo, **{**kwargs, **credentials.current().connect_kwargs()})
            except psycopg.OperationalError as exc:
                if not auth_refused(exc):
                    raise
            return super().connect(conninfo, **{**kwargs, **credentials.refresh().connect_kwargs()})

    return RotatingConnection


@dataclass(frozen=True)
class RecordedPrediction:
    id: str
    created_at: datetime


class Database:
    """The app's pool and its few queries (all SQL of the app is here)."""

    def __init__(self, credentials: SecretCredentials, *, max_size: int = 5, timeout_s: float = 5.0) -> None:
        self.credentials = credentials
        self.timeout_s = timeout_s
        self.pool = ConnectionPool(
            connection_class=rotating_connection_class(credentials),
            min_size=1,
            max_size=max_size,
            timeout=timeout_s,
            open=False,
            name="predictions",
            kwargs={"connect_timeout": max(1, round(timeout_s)), "application_name": "prediction-service"},
        )

    def open(self) -> None:
        """Open without waiting: the app starts (alive, not ready) even while the database is away."""
        self.pool.open(wait=False)

    def close(self) -> None:
        self.pool.close(timeout=self.timeout_s)

    def ping(self) -> str:
        """The schema revision, proving a round trip; raises if the database does not answer.

        Waits at most 2 s for a connection: a health check must answer inside the load balancer's timeout.
        """
        with self.pool.connection(timeout=min(2.0, self.timeout_s)) as conn:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        return str(row[0]) if row else "none"

    def record_prediction(
        self,
        *,
        request: dict[str, Any],
        answer: dict[str, Any],
        probability: float,
        churned: int,
        model_id: str,
        endpoint_name: str,
        variant: str | None,
        latency_ms: float,
    ) -> RecordedPrediction:
        with self.pool.connection() as conn:
            row = conn.execute(
                """INSERT INTO predictions
                       (id, request, answer, churn_probability, churned, model_id, endpoint_name, variant, latency_ms)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
                   RETURNING id, created_at""",
                (
                    uuid.uuid4(),
                    json.dumps(request),
                    json.dumps(answer),
                    probability,
                    churned,
                    model_id,
                    endpoint_name,
                    variant,
                    latency_ms,
                ),
            ).fetchone()
        assert row is not None  # RETURNING of a successful INSERT
        return RecordedPrediction(str(row[0]), row[1])

    def record_feedback(self, prediction_id: str, label: int) -> bool:
        """Record (or correct) the true label of a prediction; False if there is no such prediction."""
        with self.pool.connection() as conn:
            row = conn.execute(
                """INSERT INTO feedback (prediction_id, true_label)
                   SELECT id, %s FROM predictions WHERE id = %s
                   ON CONFLICT (prediction_id) DO UPDATE SET true_label = EXCLUDED.true_label, recorded_at = now()
                   RETURNING prediction_id""",
                (label, prediction_id),
            ).fetchone()
        return row is not None

    def prediction(self, prediction_id: str) -> dict[str, Any] | None:
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                """SELECT p.id::text AS id, p.created_at::text AS created_at, p.request, p.answer, p.churn_probability,
                          p.churned, p.model_id, p.endpoint_name, p.variant, p.latency_ms, f.true_label
                   FROM predictions p LEFT JOIN feedback f ON f.prediction_id = p.id WHERE p.id = %s""",
                (prediction_id,),
            )
            return cur.fetchone()

    def recent(self, limit: int = 20) -> list[dict[str, Any]]:
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                """SELECT p.id::text AS id, p.created_at, p.request, p.churn_probability, p.churned, p.model_id,
                          p.variant, p.latency_ms, f.true_label
                   FROM predictions p LEFT JOIN feedback f ON f.prediction_id = p.id
                   ORDER BY p.created_at DESC LIMIT %s""",
                (limit,),
            )
            return list(cur.fetchall())

    def summary(self) -> dict[str, Any]:
        """Counts and latency percentiles of the last hour; accuracy where feedback exists."""
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                """SELECT count(*) AS predictions,
                          percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50_ms,
                          percentile_cont(0.9) WITHIN GROUP (ORDER BY latency_ms) AS p90_ms,
                          avg(churned::float) AS churn_rate
                   FROM predictions WHERE created_at > now() - interval '1 hour'"""
            )
            hour = dict(cur.fetchone() or {})
            cur.execute(
                """SELECT count(*) AS labelled, avg((p.churned = f.true_label)::int::float) AS accuracy
                   FROM feedback f JOIN predictions p ON p.id = f.prediction_id"""
            )
            hour.update(cur.fetchone() or {})
        return hour
