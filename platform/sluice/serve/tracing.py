"""W3C trace context for both HTTP apps, with OpenTelemetry spans.

Every request continues the caller's trace when it sends a valid ``traceparent`` header
(else it starts one): its server span is a child of the caller's, the response carries
``traceparent`` (this request's span) and ``X-Trace-Id``, and handlers read the trace id
from ``request.state.trace_id`` to put it in responses and log records (a decision's
``trace_id``). Spans are exported over OTLP/HTTP with the OpenTelemetry SDK only when an
endpoint is configured in the process's environment (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, with the SDK's own variables for headers and
timeouts, read where the exporter runs); nothing is exported by default.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()
_providers: dict[str, TracerProvider] = {}
_lock = threading.Lock()


def traces_endpoint(env: Mapping[str, str] = os.environ) -> str | None:
    """Where spans go (the OTLP/HTTP traces URL), or None: nothing leaves the process."""
    if env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return f"{base.rstrip('/')}/v1/traces" if base else None


def provider(service: str, env: Mapping[str, str] = os.environ) -> TracerProvider:
    """This process's tracer provider for ``service`` (one per service name), exporting
    over OTLP/HTTP to :func:`traces_endpoint` when there is one. Kept out of
    OpenTelemetry's global provider, so nothing else in the process (Ray's own
    instrumentation) changes what Sluice exports."""
    with _lock:
        found = _providers.get(service)
        if found is None:
            found = TracerProvider(resource=Resource.create({"service.name": service}))
            endpoint = traces_endpoint(env)
            if endpoint:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter,
                )

                found.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
            _providers[service] = found
        return found


def trace_id_of(span: trace.Span) -> str:
    return format(span.get_span_context().trace_id, "032x")


class TraceContext:
    """ASGI middleware: one server span per HTTP request, continuing the caller's W3C
    trace context; ``traceparent`` and ``X-Trace-Id`` on the response."""

    def __init__(self, app: Any, tracer: Tracer) -> None:
        self.app = app
        self.tracer = tracer

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1")
            for k, v in scope["headers"]
            if k.lower() in (b"traceparent", b"tracestate")
        }
        parent = _PROPAGATOR.extract(headers)
        name = f"{scope.get('method', '')} {scope.get('path', '')}"
        with self.tracer.start_as_current_span(
            name, context=parent, kind=SpanKind.SERVER, record_exception=False
        ) as span:
            trace_id = trace_id_of(span)
            scope.setdefault("state", {})["trace_id"] = trace_id
            carrier: dict[str, str] = {}
            _PROPAGATOR.inject(carrier)
            extra = [
                (b"traceparent", carrier["traceparent"].encode()),
                (b"x-trace-id", trace_id.encode()),
            ]

            async def send_with_trace(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    span.set_attribute("http.response.status_code", message["status"])
                    message["headers"] = [*message.get("headers", []), *extra]
                await send(message)

            await self.app(scope, receive, send_with_trace)


__all__ = ["TraceContext", "provider", "trace_id_of", "traces_endpoint"]
