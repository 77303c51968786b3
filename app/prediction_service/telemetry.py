"""Tracing: OpenTelemetry spans for the request, the endpoint call and the database write.

On AWS they go by OTLP/HTTP to the ADOT collector sidecar (OTEL_EXPORTER_OTLP_ENDPOINT, default
http://localhost:4318), which exports them to X-Ray; on the embedded target and in tests, to a
file of JSON lines (one span per line) that a test reads.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

from prediction_service.settings import Settings

SERVICE_NAME = "prediction-service"


class JsonLinesSpanExporter(SpanExporter):
    """Appends each finished span as one JSON line to a file (the SDK has no file exporter)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(json.loads(span.to_json()), separators=(",", ":")) + "\n" for span in spans)
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write(lines)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


class XRayIdGenerator(RandomIdGenerator):
    """Trace ids whose first 32 bits are the start time in epoch seconds, as X-Ray's ids are.

    X-Ray keeps only traces whose id time lies in the last 30 days; the ADOT collector's X-Ray
    exporter passes these through unchanged. (The SDK's AWS extension does the same; this avoids
    a dependency for eight lines.)
    """

    def generate_trace_id(self) -> int:
        return (int(time.time()) << 96) | random.getrandbits(96)


def tracer_provider(settings: Settings) -> TracerProvider:
    """A provider for this process, exporting as the settings say (not installed globally: the app owns it)."""
    resource = Resource.create({"service.name": SERVICE_NAME, "deployment.environment": settings.stage})
    provider = TracerProvider(resource=resource, id_generator=XRayIdGenerator())
    if settings.trace_exporter == "file":
        assert settings.trace_file is not None  # the settings refuse file export without a file
        provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(settings.trace_file)))
    elif settings.trace_exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider
