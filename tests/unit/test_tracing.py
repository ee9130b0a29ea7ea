"""W3C trace context on both apps, and spans exported over OTLP/HTTP only when an
endpoint is configured (a real receiver here, decoding the protobuf the SDK sends)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from sluice.auth import KeyStore, Scope
from sluice.contracts import PROPENSITY_V1
from sluice.decisioning.catalog import CatalogSource
from sluice.registry import Registry
from sluice.serve.backends import LocalBackend
from sluice.serve.backoffice_api import create_backoffice_api
from sluice.serve.engine import ScoringEngine
from sluice.serve.http import create_api
from sluice.serve.tracing import provider, traces_endpoint
from sluice.settings import SluiceSettings
from sluice.training import TrainedModel

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"
HEADER = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")


class Receiver:
    """An OTLP/HTTP traces endpoint: keeps every ExportTraceServiceRequest it is sent."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                assert self.path == "/v1/traces"
                assert self.headers["Content-Type"] == "application/x-protobuf"
                received.append(ExportTraceServiceRequest.FromString(body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def spans(self) -> list[Any]:
        return [
            span
            for r in self.requests
            for rs in r.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        ]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def _decision_app(
    settings: SluiceSettings, model: TrainedModel, service: str, env: dict[str, str]
) -> tuple[TestClient, dict[str, str]]:
    registry = Registry(settings)
    registry.promote(registry.register(model).version, by="tests")
    engine = ScoringEngine(["sluice-propensity@champion"], PROPENSITY_V1, registry)
    engine.refresh()
    store = KeyStore(settings.home_dir / "keys.json")
    key = {"Authorization": f"Bearer {store.create('decide', (Scope.DECIDE,))[0]}"}
    tracer = provider(service, env).get_tracer("test")
    api = create_api(
        LocalBackend(engine, CatalogSource.read()), store, PROPENSITY_V1, tracer=tracer
    )
    return TestClient(api), key


def _decide_body(features_dir: Any) -> dict[str, Any]:
    row = pq.read_table(features_dir / "audience.parquet").slice(0, 1).to_pylist()[0]
    customer = {"customer_id": row["customer_id"], "country": "DE", "consents": {"email": True}}
    return {"customer": customer, "features": {k: v for k, v in row.items() if k != "customer_id"}}


def test_the_endpoint_comes_from_the_sdk_variables() -> None:
    assert traces_endpoint({}) is None
    assert traces_endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}) == (
        "http://c:4318/v1/traces"
    )
    both = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t/x",
    }
    assert traces_endpoint(both) == "http://t/x"


def test_a_decision_continues_the_callers_trace_and_exports_its_span(
    fresh_settings: SluiceSettings,
    trained_model: TrainedModel,
    features_dir: Any,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url}
    client, key = _decision_app(fresh_settings, trained_model, "sluice-test-export", env)
    with caplog.at_level("INFO", "ray.serve.sluice"):
        r = client.post(
            "/v1/decide",
            json=_decide_body(features_dir),
            headers={**key, "traceparent": TRACEPARENT},
        )
    assert r.status_code == 200, r.text
    decision = r.json()
    assert decision["trace_id"] == CALLER_TRACE == r.headers["x-trace-id"]
    echoed = HEADER.match(r.headers["traceparent"])
    assert echoed and echoed.group(1) == CALLER_TRACE and echoed.group(2) != "00f067aa0ba902b7"
    logged = [m for m in caplog.messages if decision["decision_id"] in m]
    assert len(logged) == 1 and f'"trace_id": "{CALLER_TRACE}"' in logged[0]

    provider("sluice-test-export", env).force_flush()
    [span] = [s for s in receiver.spans() if s.trace_id.hex() == CALLER_TRACE]
    assert span.parent_span_id.hex() == "00f067aa0ba902b7"  # a child of the caller's span
    assert span.span_id.hex() == echoed.group(2) and span.name == "POST /v1/decide"
    status = {a.key: a.value.int_value for a in span.attributes}["http.response.status_code"]
    assert status == 200


def test_without_a_valid_header_a_trace_starts_and_without_an_endpoint_nothing_leaves(
    fresh_settings: SluiceSettings,
    trained_model: TrainedModel,
    features_dir: Any,
    receiver: Receiver,
) -> None:
    client, key = _decision_app(fresh_settings, trained_model, "sluice-test-quiet", {})
    seen = set()
    for header in (
        {},
        {"traceparent": "00-not-a-trace-01"},
        {"traceparent": f"00-{'0' * 32}-00f067aa0ba902b7-01"},
    ):
        r = client.post("/v1/decide", json=_decide_body(features_dir), headers={**key, **header})
        assert r.status_code == 200, r.text
        trace_id = r.json()["trace_id"]
        assert HEADER.match(r.headers["traceparent"]).group(1) == trace_id != "0" * 32
        seen.add(trace_id)
    assert len(seen) == 3  # each started its own trace
    provider("sluice-test-quiet", {}).force_flush()
    assert receiver.requests == []


def test_the_back_office_answers_with_the_trace_too(fresh_settings: SluiceSettings) -> None:
    store = KeyStore(fresh_settings.home_dir / "keys.json")
    tracer = provider("sluice-test-office", {}).get_tracer("test")
    client = TestClient(create_backoffice_api(store, fresh_settings, tracer=tracer))
    r = client.get("/healthz", headers={"traceparent": TRACEPARENT})
    assert r.headers["x-trace-id"] == CALLER_TRACE
    unauthorized = client.get("/v1/admin/incidents", headers={"traceparent": TRACEPARENT})
    assert unauthorized.status_code == 401 and unauthorized.headers["x-trace-id"] == CALLER_TRACE
