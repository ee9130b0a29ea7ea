"""Decisions by customer id through the HTTP API, scoring in-process (the Serve ingress's
app and handlers), on Feast's SQLite store and a real Redis."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from tests.conftest import SCORE_CUTOFF
from tests.online_support import online_config

from sluice.auth import KeyStore, Scope
from sluice.contracts import PROPENSITY_V1
from sluice.contracts.clock import Clock
from sluice.decisioning.catalog import CatalogSource
from sluice.online import OnlineFeatures, OnlineStore, materialize
from sluice.registry import Registry
from sluice.serve.backends import LocalBackend
from sluice.serve.engine import ScoringEngine
from sluice.serve.http import create_api
from sluice.settings import SluiceSettings
from sluice.training import TrainedModel

CUTOFF = datetime(SCORE_CUTOFF.year, SCORE_CUTOFF.month, SCORE_CUTOFF.day, tzinfo=UTC)
AT = (CUTOFF + timedelta(hours=2)).isoformat()


@pytest.fixture(params=["sqlite", "redis"])
def service(
    request: pytest.FixtureRequest,
    fresh_settings: SluiceSettings,
    trained_model: TrainedModel,
    features_dir: Path,
    tmp_path: Path,
) -> Iterator[tuple[TestClient, dict[str, str], list[dict[str, Any]]]]:
    for config in online_config(request.param, tmp_path):
        audience = tmp_path / "audience.parquet"
        pq.write_table(pq.read_table(features_dir / "audience.parquet").slice(0, 500), audience)
        materialize(audience, PROPENSITY_V1, OnlineStore(config, PROPENSITY_V1))
        registry = Registry(fresh_settings)
        registry.promote(registry.register(trained_model).version, by="tests")
        engine = ScoringEngine(
            ["sluice-propensity@champion"],
            PROPENSITY_V1,
            registry,
            features=OnlineFeatures(config, PROPENSITY_V1),
            clock=Clock.at(datetime.fromisoformat(AT)),  # "now", for requests without `at`
        )
        engine.refresh()
        keys = KeyStore(fresh_settings.home_dir / "keys.json")
        key = keys.create("both", (Scope.SCORE, Scope.DECIDE))[0]
        client = TestClient(
            create_api(LocalBackend(engine, CatalogSource.read()), keys, PROPENSITY_V1)
        )
        yield client, {"Authorization": f"Bearer {key}"}, pq.read_table(audience).to_pylist()


def test_scores_by_id_equal_scores_of_the_same_rows(
    service: tuple[TestClient, dict[str, str], list[dict[str, Any]]], trained_model: TrainedModel
) -> None:
    client, h, rows = service
    pick = rows[:40]
    by_id = client.post(
        "/v1/score", json={"customer_ids": [r["customer_id"] for r in pick], "at": AT}, headers=h
    )
    given = client.post("/v1/score", json={"rows": pick}, headers=h)
    assert by_id.status_code == 200 and given.status_code == 200, by_id.text
    scores = [s["score"] for s in by_id.json()["scores"]]
    assert scores == [s["score"] for s in given.json()["scores"]]
    np.testing.assert_array_equal(
        scores, trained_model.booster.predict(PROPENSITY_V1.encode_rows(pick))
    )
    assert {s["features_at"] for s in by_id.json()["scores"]} == {
        CUTOFF.isoformat().replace("+00:00", "Z")
    }
    assert all(s["features_at"] is None for s in given.json()["scores"])


def test_decide_by_id_with_a_context_or_the_id_alone(
    service: tuple[TestClient, dict[str, str], list[dict[str, Any]]],
) -> None:
    client, h, rows = service
    row = rows[0]
    context = {
        "customer_id": row["customer_id"],
        "country": row["country"],
        "consents": {"email": True},
        "at": AT,
    }
    features = {k: v for k, v in row.items() if k != "customer_id"}
    with_features = client.post(
        "/v1/decide", json={"customer": context, "features": features}, headers=h
    )
    by_id = client.post("/v1/decide", json={"customer": context}, headers=h)
    assert with_features.status_code == 200 and by_id.status_code == 200, by_id.text
    a, b = with_features.json(), by_id.json()
    assert a["score"] == b["score"] and a["offer_id"] == b["offer_id"]
    assert a["features_at"] is None and b["features_at"].startswith(CUTOFF.date().isoformat())
    assert b["stale_features"] is False
    alone = client.post("/v1/decide", json={"customer_id": row["customer_id"]}, headers=h)
    assert alone.status_code == 200, alone.text
    assert alone.json()["score"] == a["score"] and alone.json()["channel"] is None
    assert alone.json()["features_at"].startswith(CUTOFF.date().isoformat())


def test_missing_id_is_404_and_stale_or_future_rows_are_409(
    service: tuple[TestClient, dict[str, str], list[dict[str, Any]]],
) -> None:
    client, h, rows = service
    cid = rows[0]["customer_id"]
    missing = client.post("/v1/score", json={"customer_ids": [cid, "ghost-7"], "at": AT}, headers=h)
    assert missing.status_code == 404
    assert missing.json()["code"] == "customer_not_found" and "ghost-7" in missing.json()["message"]
    assert missing.json()["field"] == "customer_id"

    late = (CUTOFF + timedelta(hours=PROPENSITY_V1.max_age_hours + 1)).isoformat()
    stale = client.post("/v1/score", json={"customer_ids": [cid], "at": late}, headers=h)
    assert stale.status_code == 409 and stale.json()["code"] == "stale_features"
    flagged = client.post(
        "/v1/score", json={"customer_ids": [cid], "at": late, "allow_stale": True}, headers=h
    )
    assert flagged.status_code == 200 and flagged.json()["scores"][0]["stale_features"] is True

    early = (CUTOFF - timedelta(minutes=1)).isoformat()
    future = client.post("/v1/score", json={"customer_ids": [cid], "at": early}, headers=h)
    assert future.status_code == 409 and future.json()["code"] == "features_after_request"

    context = {"customer_id": "ghost-8", "country": "US", "at": AT}
    decide = client.post("/v1/decide", json={"customer": context}, headers=h)
    assert decide.status_code == 404 and "ghost-8" in decide.json()["message"]


def test_requests_must_say_where_the_features_come_from(
    service: tuple[TestClient, dict[str, str], list[dict[str, Any]]],
) -> None:
    client, h, rows = service
    both = client.post("/v1/score", json={"rows": rows[:1], "customer_ids": ["a"]}, headers=h)
    neither = client.post("/v1/score", json={}, headers=h)
    for r in (both, neither):
        assert r.status_code == 422 and "customer_ids" in r.json()["message"]
    features = {k: v for k, v in rows[0].items() if k != "customer_id"}
    decide = client.post("/v1/decide", json={"customer_id": "a", "features": features}, headers=h)
    assert decide.status_code == 422 and "customer_id" in decide.json()["message"]
    unauthorised = client.post("/v1/score", json={"customer_ids": ["a"]})
    assert unauthorised.status_code == 401
