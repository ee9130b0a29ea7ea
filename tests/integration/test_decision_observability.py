"""What the decision service on Ray Serve tells its operators: Prometheus metrics, and
JSON logs with request ids that never show a key."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest
from tests.integration.decision_support import bearer, features_of

from sluice.auth import KeyStore, Scope
from sluice.registry import VersionInfo
from sluice.settings import SluiceSettings


@pytest.fixture(scope="module")
def keys(settings: SluiceSettings, service: str) -> dict[str, str]:
    store = KeyStore(settings.keys_file)
    return {
        name: store.create(f"obs-{name}-{time.monotonic_ns()}", (scope,))[0]
        for name, scope in {"score": Scope.SCORE, "decide": Scope.DECIDE}.items()
    }


@pytest.fixture(scope="module")
def rows(features_dir: Path) -> list[dict[str, Any]]:
    return pq.read_table(features_dir / "audience.parquet").slice(0, 5).to_pylist()


def test_prometheus_metrics_are_exported(
    service: str,
    keys: dict[str, str],
    rows: list[dict[str, Any]],
    champion: VersionInfo,
    metrics_port: int,
) -> None:
    for _ in range(5):
        httpx.post(f"{service}/v1/score", json={"rows": rows[:2]}, headers=bearer(keys["score"]))
    customer = {
        "customer_id": rows[0]["customer_id"],
        "country": "DE",
        "consents": {"email": True},
        "at": "2026-06-15T12:00:00Z",
    }
    httpx.post(
        f"{service}/v1/decide",
        json={"customer": customer, "features": features_of(rows[0])},
        headers=bearer(keys["decide"]),
    )
    wanted = (
        "ray_sluice_requests_total",
        "ray_sluice_request_latency_ms_bucket",
        "ray_sluice_decisions_total",
        "ray_sluice_model_version",
    )
    url = f"http://127.0.0.1:{metrics_port}/metrics"

    def scored(text: str) -> float:
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("ray_sluice_requests_total")
            and 'route="/v1/score"' in line
            and 'status="200"' in line
        )

    # Counters reach the exporter on its own period: wait until these requests did.
    deadline, text = time.monotonic() + 60, ""
    while time.monotonic() < deadline:
        text = httpx.get(url, timeout=10).text
        if all(name in text for name in wanted) and scored(text) >= 5:
            break
        time.sleep(2)
    missing = [name for name in wanted if name not in text]
    assert not missing, missing
    assert scored(text) >= 5
    gauge = [
        line
        for line in text.splitlines()
        if line.startswith("ray_sluice_model_version") and 'alias="champion"' in line
    ]
    assert gauge and float(gauge[0].rsplit(" ", 1)[1]) >= float(champion.version)
    # Keys never reach the metrics (nor the logs): only names and routes do.
    assert keys["score"] not in text


def test_logs_are_json_with_request_ids_and_never_show_keys(
    service: str, keys: dict[str, str], rows: list[dict[str, Any]]
) -> None:
    import json

    import ray

    customer = {
        "customer_id": rows[0]["customer_id"],
        "country": "DE",
        "consents": {"email": True},
        "at": "2026-06-15T12:00:00Z",
    }
    r = httpx.post(
        f"{service}/v1/decide",
        json={"customer": customer, "features": features_of(rows[0])},
        headers={**bearer(keys["decide"]), "X-Request-Id": "trace-me-1"},
    )
    # Serve's direct ingress sends the header twice; both carry the caller's id.
    assert r.status_code == 200 and {v.strip() for v in r.headers["x-request-id"].split(",")} == {
        "trace-me-1"
    }
    decision_id = r.json()["decision_id"]
    logs = Path(ray._private.worker._global_node.get_session_dir_path()) / "logs" / "serve"
    deadline, records = time.monotonic() + 30, []
    while time.monotonic() < deadline:
        lines = [
            line
            for f in logs.glob("replica_decision_Decisions_*.log")
            for line in f.read_text().splitlines()
            if line.strip()
        ]
        records = [json.loads(line) for line in lines]  # every line is one JSON object
        if any(decision_id in rec["message"] for rec in records):
            break
        time.sleep(1)
    [logged] = [rec for rec in records if decision_id in rec["message"]]
    assert (
        logged["request_id"] == "trace-me-1"
        and json.loads(logged["message"])["event"] == "decision"
    )
    everything = "".join(f.read_text(errors="replace") for f in logs.glob("*.log"))
    for key in keys.values():
        assert key.split("_", 2)[2] not in everything
