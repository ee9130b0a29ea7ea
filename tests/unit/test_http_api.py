"""The HTTP layer without Ray: the same app the Serve ingress builds, scoring in-process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from sluice.auth import KeyStore, Scope
from sluice.contracts import PROPENSITY_V1
from sluice.decisioning.catalog import CatalogSource
from sluice.registry import Registry
from sluice.serve.backends import LocalBackend
from sluice.serve.engine import ScoringEngine
from sluice.serve.http import create_api
from sluice.settings import SluiceSettings
from sluice.training import TrainedModel


@pytest.fixture
def api(
    fresh_settings: SluiceSettings, trained_model: TrainedModel
) -> tuple[TestClient, ScoringEngine, dict[str, str]]:
    aliases = ["sluice-propensity@champion", "sluice-propensity@challenger"]
    engine = ScoringEngine(aliases, PROPENSITY_V1, Registry(fresh_settings))
    store = KeyStore(fresh_settings.home_dir / "keys.json")
    keys = {
        name: store.create(name, scopes)[0]
        for name, scopes in {"score": (Scope.SCORE,), "admin": (Scope.ADMIN,)}.items()
    }
    client = TestClient(
        create_api(
            LocalBackend(engine, CatalogSource.read()),
            store,
            PROPENSITY_V1,
        )
    )
    return client, engine, keys


@pytest.fixture(scope="module")
def rows(features_dir: Path) -> list[dict[str, Any]]:
    return pq.read_table(features_dir / "audience.parquet").slice(0, 5).to_pylist()


def test_not_ready_until_a_model_is_registered_then_serving(
    api: tuple[TestClient, ScoringEngine, dict[str, str]],
    rows: list[dict[str, Any]],
    trained_model: TrainedModel,
) -> None:
    client, engine, keys = api
    engine.refresh()
    h = {"Authorization": f"Bearer {keys['score']}"}
    assert client.get("/readyz").status_code == 503
    unloaded = client.post("/v1/score", json={"rows": rows}, headers=h)
    assert unloaded.status_code == 409 and unloaded.json()["code"] == "model_unavailable"
    registry = engine.registry
    info = registry.register(trained_model)
    registry.promote(info.version, by="tests")
    assert engine.refresh() == [
        f"champion: None -> {info.version}",
        f"challenger: None -> {info.version}",
    ]
    assert engine.refresh() == []  # nothing moved
    assert client.get("/readyz").json()["status"] == "ready"
    r = client.post("/v1/score", json={"rows": rows}, headers={**h, "X-Request-Id": "req-42"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "req-42"
    expected = trained_model.booster.predict(PROPENSITY_V1.encode_rows(rows))
    np.testing.assert_array_equal([s["score"] for s in r.json()["scores"]], expected)
    assert (
        client.post("/v1/score", json={"rows": rows, "model": "challenger"}, headers=h).json()[
            "model_version"
        ]
        == info.version
    )


def test_errors_have_one_shape(
    api: tuple[TestClient, ScoringEngine, dict[str, str]], rows: list[dict[str, Any]]
) -> None:
    client, _, keys = api
    missing = client.post("/v1/score", json={"rows": rows})
    assert missing.status_code == 401 and set(missing.json()) == {
        "code",
        "message",
        "field",
        "request_id",
    }
    bad = client.post(
        "/v1/score",
        json={"rows": [{**rows[0], "tenure_days": -5}]},
        headers={"Authorization": f"Bearer {keys['score']}"},
    )
    body = bad.json()
    assert bad.status_code == 422 and body["field"] == "rows.0.tenure_days" and body["request_id"]
    not_json = client.post(
        "/v1/score",
        content=b"{",
        headers={"Authorization": f"Bearer {keys['score']}", "content-type": "application/json"},
    )
    assert not_json.status_code == 422 and not_json.json()["code"] == "invalid_input"
    forbidden = client.post(
        "/v1/decide", json={}, headers={"Authorization": f"Bearer {keys['score']}"}
    )
    assert forbidden.status_code in (403, 422)
