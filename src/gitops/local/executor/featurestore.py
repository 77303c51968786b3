"""A loopback SageMaker Feature Store runtime (PutRecord, GetRecord) with an offline store in SageMaker's layout.

moto has no featurestore-runtime. Jobs reach this server through
AWS_ENDPOINT_URL_SAGEMAKER_FEATURESTORE_RUNTIME, with their ordinary boto3 client. Records are
checked against the feature group as the embedded SageMaker describes it (names, types, the
identifier and event time). The online store keeps the newest record per identifier (by event
time) in a JSON file of the local directory; every record is also appended to the offline store:
Parquet files under the group's ResolvedOutputS3Uri in the embedded S3, partitioned
year=/month=/day=/hour= by event time, with write_time, api_invocation_time and is_deleted,
written when flush() is called (SageMaker itself writes them within minutes, not at once).
"""

from __future__ import annotations

import json
import math
import re
import tempfile
import threading
import urllib.parse
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from gitops.files import atomic_write
from gitops.local.executor.storage import upload_files

ONLINE_DIR = "featurestore-online"
_PATH = re.compile(r"^/FeatureGroup/([^/?]+)$")
_INTEGRAL = re.compile(r"^[+-]?\d+$")
OFFLINE_TYPES = {"String": "VARCHAR", "Integral": "BIGINT", "Fractional": "DOUBLE"}


class RecordRejected(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


class FeatureStoreRuntime:
    """The runtime's state and rules; LoopbackServer puts it on HTTP."""

    def __init__(self, sagemaker: Any, s3: Any, local_dir: Path) -> None:
        self.sagemaker = sagemaker
        self.s3 = s3
        self.dir = local_dir / ONLINE_DIR
        self.lock = threading.Lock()
        self.groups: dict[str, dict] = {}
        self.online: dict[str, dict[str, dict]] = {}
        self.pending: dict[str, list[dict]] = {}

    def group(self, name: str) -> dict:
        if name not in self.groups:
            try:
                self.groups[name] = self.sagemaker.describe_feature_group(FeatureGroupName=name)
            except self.sagemaker.exceptions.ClientError:
                raise RecordRejected(404, "ResourceNotFound", f"Resource Not Found: feature group {name}") from None
        return self.groups[name]

    def _online(self, name: str) -> dict[str, dict]:
        if name not in self.online:
            path = self.dir / f"{name}.json"
            self.online[name] = json.loads(path.read_text()) if path.is_file() else {}
        return self.online[name]

    def put_record(self, name: str, record: list[dict]) -> None:
        group = self.group(name)
        types = {d["FeatureName"]: d["FeatureType"] for d in group["FeatureDefinitions"]}
        values: dict[str, str] = {}
        for item in record:
            feature, value = item.get("FeatureName"), item.get("ValueAsString")
            if not isinstance(feature, str) or feature not in types:
                raise RecordRejected(400, "ValidationError", f"feature {feature!r} is not in feature group {name}")
            if not isinstance(value, str):
                raise RecordRejected(400, "ValidationError", f"feature {feature!r}: ValueAsString is required")
            if types[feature] == "Integral" and not _INTEGRAL.match(value):
                raise RecordRejected(400, "ValidationError", f"feature {feature!r}: {value!r} is not Integral")
            if types[feature] == "Fractional":
                try:
                    ok = math.isfinite(float(value))
                except ValueError:
                    ok = False
                if not ok:
                    raise RecordRejected(400, "ValidationError", f"feature {feature!r}: {value!r} is not Fractional")
            values[feature] = value
        identifier, event = group["RecordIdentifierFeatureName"], group["EventTimeFeatureName"]
        for required in (identifier, event):
            if not values.get(required):
                raise RecordRejected(400, "ValidationError", f"the record has no {required}")
        event_time = _parse_time(values[event])
        now = datetime.now(UTC)
        with self.lock:
            online = self._online(name)
            held = online.get(values[identifier])
            if held is None or _parse_time(held["event_time"]) <= event_time:
                online[values[identifier]] = {"event_time": values[event], "record": record}
            self.pending.setdefault(name, []).append(
                {"values": values, "write_time": now, "api_invocation_time": now, "event_time": event_time}
            )

    def get_record(self, name: str, identifier: str, features: list[str]) -> dict:
        self.group(name)
        with self.lock:
            held = self._online(name).get(identifier)
        if held is None:
            return {}
        record = [item for item in held["record"] if not features or item["FeatureName"] in features]
        return {"Record": record}

    def flush(self) -> str:
        """Write pending records to the offline store and the online store to disk; says what it wrote."""
        with self.lock:
            pending, self.pending = self.pending, {}
            for name, online in self.online.items():
                atomic_write(self.dir / f"{name}.json", json.dumps(online, sort_keys=True))
        written = {name: self._write_offline(name, rows) for name, rows in pending.items() if rows}
        return "; ".join(f"offline store of {name}: {count} record(s) written" for name, count in written.items())

    def _write_offline(self, name: str, rows: list[dict]) -> int:
        import duckdb

        group = self.group(name)
        config = group.get("OfflineStoreConfig", {}).get("S3StorageConfig", {})
        base = config.get("ResolvedOutputS3Uri") or config.get("S3Uri")
        if not base:
            return 0  # an online-only group: nothing to write offline
        columns = [(d["FeatureName"], OFFLINE_TYPES[d["FeatureType"]]) for d in group["FeatureDefinitions"]]
        bucket, _, prefix = base[len("s3://") :].partition("/")
        with tempfile.TemporaryDirectory(prefix="gitops-offline-") as tmp:
            con = duckdb.connect()
            spec = ", ".join(f'"{c}" {t}' for c, t in columns)
            con.execute(
                f"CREATE TABLE rows ({spec}, write_time TIMESTAMPTZ, api_invocation_time TIMESTAMPTZ,"
                " is_deleted BOOLEAN, year VARCHAR, month VARCHAR, day VARCHAR, hour VARCHAR)"
            )
            con.executemany(
                f"INSERT INTO rows VALUES ({', '.join('?' for _ in range(len(columns) + 7))})",
                [
                    [
                        *(row["values"].get(c) for c, _ in columns),
                        row["write_time"],
                        row["api_invocation_time"],
                        False,
                        f"{row['event_time']:%Y}",
                        f"{row['event_time']:%m}",
                        f"{row['event_time']:%d}",
                        f"{row['event_time']:%H}",
                    ]
                    for row in rows
                ],
            )
            out = Path(tmp) / "data"
            stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}_{uuid.uuid4().hex[:16]}"
            con.execute(
                f"COPY rows TO '{out}' (FORMAT parquet, PARTITION_BY (year, month, day, hour),"
                f" FILENAME_PATTERN '{stamp}_{{i}}')"
            )
            con.close()
            upload_files(
                self.s3,
                (
                    (path, bucket, f"{prefix.rstrip('/')}/{path.relative_to(out).as_posix()}")
                    for path in sorted(out.rglob("*.parquet"))
                ),
            )
        return len(rows)


def _parse_time(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = datetime.fromtimestamp(float(text), UTC)
        except ValueError:
            raise RecordRejected(
                400, "ValidationError", f"event time {text!r} is not ISO-8601 or epoch seconds"
            ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class _Handler(BaseHTTPRequestHandler):
    runtime: FeatureStoreRuntime

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        return None

    def _answer(self, status: int, body: dict, code: str | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if code:
            self.send_header("x-amzn-ErrorType", code)
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        parsed = urllib.parse.urlparse(self.path)
        match = _PATH.match(parsed.path)
        try:
            if match is None:
                raise RecordRejected(
                    501, "ValidationError", f"not run locally: {method} {parsed.path} (only PutRecord and GetRecord)"
                )
            name = urllib.parse.unquote(match.group(1))
            if method == "PUT":
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                self.runtime.put_record(name, body.get("Record") or [])
                self._answer(200, {})
            elif method == "GET":
                query = urllib.parse.parse_qs(parsed.query)
                identifier = (query.get("RecordIdentifierValueAsString") or [""])[0]
                self._answer(200, self.runtime.get_record(name, identifier, query.get("FeatureName", [])))
            else:
                raise RecordRejected(
                    501, "ValidationError", f"not run locally: {method} (only PutRecord and GetRecord)"
                )
        except RecordRejected as exc:
            self._answer(exc.status, {"message": str(exc), "__type": exc.code}, exc.code)
        except ValueError as exc:
            self._answer(400, {"message": f"malformed request: {exc}"}, "ValidationError")

    def do_PUT(self) -> None:  # noqa: N802 (http.server's names)
        self._handle("PUT")

    def do_GET(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")


class LoopbackFeatureStore:
    """The runtime on 127.0.0.1, in a thread of this process, for the duration of a `with` block."""

    ENDPOINT_ENV = "AWS_ENDPOINT_URL_SAGEMAKER_FEATURESTORE_RUNTIME"

    def __init__(self, runtime: FeatureStoreRuntime) -> None:
        self.runtime = runtime
        handler = type("Handler", (_Handler,), {"runtime": runtime})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="gitops-featurestore", daemon=True)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> LoopbackFeatureStore:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.runtime.flush()
