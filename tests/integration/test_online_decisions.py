"""Decisions by customer id on Ray Serve: the Scorer replica looks customers up in the
online store (Feast's SQLite store under the session's home, as the replicas' environment
names it), and an id scores exactly as its row does in the Ray Data batch job."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sluice.auth import KeyStore, Scope
from sluice.contracts import PROPENSITY_V1
from sluice.online import OnlineStore, OnlineStoreConfig, materialize
from sluice.registry import Registry, VersionInfo
from sluice.scoring import ScoreRequest, run_scoring
from sluice.settings import SluiceSettings


@pytest.fixture(scope="module")
def materialized(settings: SluiceSettings, features_dir: Path) -> Path:
    """The session audience in the store the service's replicas read."""
    store = OnlineStore(OnlineStoreConfig.from_settings(settings), PROPENSITY_V1)
    report = materialize(features_dir / "audience.parquet", PROPENSITY_V1, store)
    assert report.rows > 10_000
    return features_dir / "audience.parquet"


@pytest.fixture(scope="module")
def key(settings: SluiceSettings, service: str) -> str:
    made, _ = KeyStore(settings.keys_file).create(
        f"it-by-id-{time.monotonic_ns()}", (Scope.SCORE, Scope.DECIDE)
    )
    return made


def test_scores_by_id_on_serve_equal_the_batch_job(
    settings: SluiceSettings,
    service: str,
    champion: VersionInfo,
    key: str,
    materialized: Path,
    tmp_path: Path,
) -> None:
    audience = tmp_path / "audience"
    audience.mkdir()
    ids = pq.read_table(materialized).column("customer_id").to_pylist()[:500]
    pq.write_table(pq.read_table(materialized).slice(0, 500), audience / "part.parquet")
    run_scoring(
        ScoreRequest(
            audience=str(audience),
            model="sluice-propensity@champion",
            out=tmp_path / "out",
            progress=False,
        ),
        Registry(settings),
    )
    batch = pq.read_table(tmp_path / "out" / "scores")
    batch_scores = dict(
        zip(batch.column("customer_id").to_pylist(), batch.column("score").to_pylist(), strict=True)
    )
    h = {"Authorization": f"Bearer {key}"}
    online: dict[str, float] = {}
    for start in range(0, len(ids), 250):
        r = httpx.post(
            f"{service}/v1/score", json={"customer_ids": ids[start : start + 250]}, headers=h
        )
        assert r.status_code == 200, r.text
        assert r.json()["model_version"] == champion.version
        online.update({s["customer_id"]: s["score"] for s in r.json()["scores"]})
        assert all(s["features_at"] is not None for s in r.json()["scores"])
    assert online == batch_scores


def test_decide_by_id_on_serve_and_its_errors(service: str, key: str, materialized: Path) -> None:
    row = pq.read_table(materialized).slice(3, 1).to_pylist()[0]
    h = {"Authorization": f"Bearer {key}"}
    context = {
        "customer_id": row["customer_id"],
        "country": row["country"],
        "consents": {"email": True},
    }
    features = {k: v for k, v in row.items() if k != "customer_id"}
    given = httpx.post(
        f"{service}/v1/decide", json={"customer": context, "features": features}, headers=h
    )
    by_id = httpx.post(f"{service}/v1/decide", json={"customer": context}, headers=h)
    assert given.status_code == 200 and by_id.status_code == 200, by_id.text
    assert by_id.json()["score"] == given.json()["score"]
    assert by_id.json()["offer_id"] == given.json()["offer_id"]
    assert by_id.json()["features_at"] is not None and given.json()["features_at"] is None

    missing = httpx.post(
        f"{service}/v1/decide", json={"customer": {**context, "customer_id": "nobody-9"}}, headers=h
    )
    assert missing.status_code == 404 and "nobody-9" in missing.json()["message"]
    assert missing.json()["request_id"]
    before = httpx.post(
        f"{service}/v1/decide",
        json={"customer": {**context, "at": "2000-01-01T00:00:00Z"}},
        headers=h,
    )
    assert before.status_code == 409 and before.json()["code"] == "features_after_request"


def test_a_batch_of_ids_with_one_unknown_is_a_404_naming_it(
    service: str, key: str, materialized: Path
) -> None:
    ids = pq.read_table(materialized).column("customer_id").to_pylist()[:3]
    r = httpx.post(
        f"{service}/v1/score",
        json={"customer_ids": [*ids, "ghost-x"]},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert r.status_code == 404 and r.json()["code"] == "customer_not_found"
    assert "ghost-x" in r.json()["message"]
    assert pa.array(ids).null_count == 0
