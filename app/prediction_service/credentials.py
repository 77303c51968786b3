"""The database credentials, read from Secrets Manager and re-read when the database refuses them.

The secret has the shape RDS writes for a generated or rotated secret:
{"username", "password", "host", "port", "dbname", ...}. Rotation changes the password under the
same ARN; a connection refused for authentication makes the pool read the secret again.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from prediction_service.errors import SecretError

REQUIRED_KEYS = ("username", "password", "host", "port", "dbname")


@dataclass(frozen=True)
class DatabaseCredentials:
    username: str
    password: str
    host: str
    port: int
    dbname: str

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for psycopg.connect (never logged: it holds the password)."""
        return {
            "user": self.username,
            "password": self.password,
            "host": self.host,
            "port": self.port,
            "dbname": self.dbname,
        }

    def __repr__(self) -> str:  # the password never reaches a log line or a traceback
        return f"DatabaseCredentials({self.username}@{self.host}:{self.port}/{self.dbname})"


def parse_secret(arn: str, secret_string: str | None) -> DatabaseCredentials:
    """The credentials in a secret's string, or SecretError naming what the secret lacks."""
    try:
        data = json.loads(secret_string or "")
    except ValueError:
        raise SecretError(
            f"{arn}: the secret is not JSON; expected the RDS shape {{username, password, host, port, dbname}}"
        ) from None
    if not isinstance(data, dict):
        raise SecretError(f"{arn}: the secret is not a JSON object with username, password, host, port, dbname")
    missing = [key for key in REQUIRED_KEYS if data.get(key) in (None, "")]
    if missing:
        raise SecretError(f"{arn}: the secret lacks {', '.join(missing)} (the RDS secret shape)")
    try:
        port = int(data["port"])
    except (TypeError, ValueError):
        raise SecretError(f"{arn}: the secret's port {data['port']!r} is not a number") from None
    return DatabaseCredentials(
        str(data["username"]), str(data["password"]), str(data["host"]), port, str(data["dbname"])
    )


class SecretCredentials:
    """The current credentials of one secret; `refresh()` reads it again (after a rotation)."""

    def __init__(self, client: Any, arn: str) -> None:
        self._client = client
        self.arn = arn
        self._lock = threading.Lock()
        self._current: DatabaseCredentials | None = None
        self.reads = 0

    def current(self) -> DatabaseCredentials:
        with self._lock:
            if self._current is None:
                self._current = self._read()
            return self._current

    def refresh(self) -> DatabaseCredentials:
        with self._lock:
            self._current = self._read()
            return self._current

    def _read(self) -> DatabaseCredentials:
        from botocore.exceptions import BotoCoreError, ClientError

        self.reads += 1
        try:
            answer = self._client.get_secret_value(SecretId=self.arn)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException":
                raise SecretError(f"{self.arn}: no such secret in Secrets Manager; check APP_DB_SECRET_ARN") from None
            if code in ("AccessDeniedException", "AccessDenied"):
                raise SecretError(
                    f"{self.arn}: reading the secret was denied; the task role needs GetSecretValue on it"
                ) from None
            raise SecretError(f"{self.arn}: reading the secret failed: {code or exc}") from None
        except BotoCoreError as exc:
            raise SecretError(f"{self.arn}: Secrets Manager could not be reached: {exc}") from None
        return parse_secret(self.arn, answer.get("SecretString"))
