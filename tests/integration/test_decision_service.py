"""The decision service on Ray Serve, deployed from deployments/decision.yaml and
exercised over real HTTP."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest
from tests.integration.decision_support import bearer, features_of

from sluice.auth import KeyStore, Scope
from sluice.registry import Registry, VersionInfo
from sluice.settings import SluiceSettings
from sluice.training import TrainedModel


@pytest.fixture(scope="module")
def keys(settings: SluiceSettings, service: str) -> dict[str, str]:
    store = KeyStore(settings.keys_file)
    made = {}
    for name, scopes in {
        "score": (Scope.SCORE,),
        "decide": (Scope.DECIDE,),
        "admin": (Scope.ADMIN,),
        "doomed": (Scope.SCORE,),
    }.items():
        made[name], _ = store.create(f"it-{name}-{time.monotonic_ns()}", scopes)
    return made


@pytest.fixture(scope="module")
def rows(features_dir: Path) -> list[dict[str, Any]]:
    return pq.read_table(features_dir / "audience.parquet").slice(0, 60).to_pylist()


def test_health_readiness_openapi_and_models(
    service: str, keys: dict[str, str], champion: VersionInfo
) -> None:
    assert httpx.get(f"{service}/healthz").json() == {"status": "ok", "detail": ""}
    assert httpx.get(f"{service}/readyz").status_code == 200
    paths = httpx.get(f"{service}/openapi.json").json()["paths"]
    assert {"/v1/score", "/v1/decide", "/v1/models", "/healthz", "/readyz"} <= set(paths)
    models = httpx.get(f"{service}/v1/models", headers=bearer(keys["score"])).json()
    assert models["default_alias"] == "champion"
    by_alias = {m["alias"]: m for m in models["models"]}
    assert by_alias["champion"]["version"] == champion.version and by_alias["champion"]["loaded"]
    assert by_alias["champion"]["feature_contract"] == "propensity@1.0.0"


def test_authentication_and_scopes(
    settings: SluiceSettings, service: str, keys: dict[str, str], rows: list[dict[str, Any]]
) -> None:
    body = {"rows": rows[:1]}
    ctx = {
        "customer": {
            "customer_id": rows[0]["customer_id"],
            "country": "DE",
            "consents": {"email": True},
        },
        "features": features_of(rows[0]),
    }
    none = httpx.post(f"{service}/v1/score", json=body)
    assert none.status_code == 401 and none.headers["www-authenticate"] == "Bearer"
    assert none.json()["code"] == "unauthorized"
    assert (
        httpx.post(
            f"{service}/v1/score", json=body, headers=bearer("slk_000000000000_nope")
        ).status_code
        == 401
    )
    assert (
        httpx.post(
            f"{service}/v1/score", json=body, headers={"Authorization": "Basic abc"}
        ).status_code
        == 401
    )
    assert (
        httpx.post(f"{service}/v1/score", json=body, headers=bearer(keys["score"])).status_code
        == 200
    )
    assert (
        httpx.post(f"{service}/v1/decide", json=ctx, headers=bearer(keys["score"])).status_code
        == 403
    )
    assert (
        httpx.post(f"{service}/v1/score", json=body, headers=bearer(keys["decide"])).status_code
        == 403
    )
    assert (
        httpx.post(f"{service}/v1/decide", json=ctx, headers=bearer(keys["decide"])).status_code
        == 200
    )
    assert (
        httpx.post(f"{service}/v1/decide", json=ctx, headers=bearer(keys["admin"])).status_code
        == 200
    )
    # Revoking takes effect on the next request, without a restart.
    doomed = keys["doomed"]
    assert httpx.post(f"{service}/v1/score", json=body, headers=bearer(doomed)).status_code == 200
    store = KeyStore(settings.keys_file)
    name = next(r.name for r in store.list() if r.name.startswith("it-doomed"))
    store.revoke(name)
    assert httpx.post(f"{service}/v1/score", json=body, headers=bearer(doomed)).status_code == 401


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda r: r.update(recency_days=-1), "rows.0.recency_days"),
        (lambda r: r.update(frequency_30d="many"), "rows.0.frequency_30d"),
        (lambda r: r.update(country="XX"), "rows.0.country"),
        (lambda r: r.update(typo=1), "rows.0.typo"),
        (lambda r: r.pop("tenure_days"), "rows.0.tenure_days"),
        (lambda r: r.update(customer_id="has space"), "rows.0.customer_id"),
    ],
)
def test_bad_input_is_422_naming_the_field(
    service: str, keys: dict[str, str], rows: list[dict[str, Any]], mutate: Any, field: str
) -> None:
    row = dict(rows[0])
    mutate(row)
    r = httpx.post(f"{service}/v1/score", json={"rows": [row]}, headers=bearer(keys["score"]))
    assert r.status_code == 422
    body = r.json()
    assert body["code"] == "invalid_input" and body["field"] == field
    assert any(e["field"] == field for e in body["errors"])


def test_request_size_and_alias_errors(
    service: str, keys: dict[str, str], rows: list[dict[str, Any]]
) -> None:
    h = bearer(keys["score"])
    assert httpx.post(f"{service}/v1/score", json={"rows": []}, headers=h).status_code == 422
    assert (
        httpx.post(f"{service}/v1/score", json={"rows": rows[:1] * 1001}, headers=h).json()["field"]
        == "rows"
    )
    missing = httpx.post(
        f"{service}/v1/score", json={"rows": rows[:1], "model": "canary"}, headers=h
    )
    assert missing.status_code == 404 and missing.json()["field"] == "model"
    # The customer id goes in `customer` only; features carrying one are refused.
    ctx = {"customer": {"customer_id": "c-1", "country": "DE"}, "features": rows[0]}
    twice = httpx.post(f"{service}/v1/decide", json=ctx, headers=bearer(keys["decide"]))
    assert twice.status_code == 422 and twice.json()["field"] == "features.customer_id"


def test_scores_equal_booster_predict(
    service: str,
    keys: dict[str, str],
    rows: list[dict[str, Any]],
    trained_model: TrainedModel,
    champion: VersionInfo,
) -> None:
    r = httpx.post(f"{service}/v1/score", json={"rows": rows}, headers=bearer(keys["score"]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_version"] == champion.version
    expected = trained_model.booster.predict(trained_model.contract.encode_rows(rows))
    got = np.array([s["score"] for s in body["scores"]])
    np.testing.assert_array_equal(got, expected)
    assert [s["customer_id"] for s in body["scores"]] == [r["customer_id"] for r in rows]


def test_decisions_follow_the_rules(
    service: str, keys: dict[str, str], rows: list[dict[str, Any]]
) -> None:
    h = bearer(keys["decide"])
    row = rows[0]

    def decide(**customer: Any) -> dict[str, Any]:
        r = httpx.post(
            f"{service}/v1/decide",
            # Pinned to a date inside every offer's validity window.
            json={
                "customer": {
                    "customer_id": row["customer_id"],
                    "at": "2026-06-15T12:00:00Z",
                    **customer,
                },
                "features": features_of(row),
            },
            headers=h,
        )
        assert r.status_code == 200, r.text
        return r.json()

    granted = decide(country="DE", consents={"email": True, "sms": True, "push": True})
    assert granted["decision_id"].startswith("dec_") and granted["model_version"]
    assert [o["expected_value"] for o in granted["ranked"]] == sorted(
        (o["expected_value"] for o in granted["ranked"]), reverse=True
    )
    withdrawn = decide(country="DE", consents={"email": False, "sms": False, "push": False})
    assert withdrawn["offer_id"] is None
    assert {e["rule"] for e in withdrawn["excluded"]} <= {
        "consent",
        "min_score",
        "country",
        "validity",
    }
    assert any(e["rule"] == "consent" for e in withdrawn["excluded"])
    us = decide(country="US", consents={"email": True})
    assert "rain-jacket-25" not in {o["offer_id"] for o in us["ranked"]}
    held = decide(
        country="DE", consents={"email": True, "push": True}, held_offers=["spring-boots-20"]
    )
    rules = {e["offer_id"]: e["rule"] for e in held["excluded"]}
    assert rules["spring-boots-20"] == "already_held"
    assert rules["running-shoes-15"] == "exclusivity"
    again = decide(country="DE", consents={"email": True, "sms": True, "push": True})
    assert (again["offer_id"], again["channel"], again["ranked"]) == (
        granted["offer_id"],
        granted["channel"],
        granted["ranked"],
    )


def test_hot_swap_under_load_fails_no_request(
    settings: SluiceSettings,
    service: str,
    keys: dict[str, str],
    rows: list[dict[str, Any]],
    trained_model: TrainedModel,
    champion: VersionInfo,
) -> None:
    """``champion`` moves to a model with other trees under 8-way load: no request fails,
    every response names its version, and its scores are that version's predictions."""
    import dataclasses

    import lightgbm as lgb

    seen: list[tuple[int, str | None, list[float]]] = []
    stop = threading.Event()
    sample = rows[:3]

    def hammer() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                r = client.post(
                    f"{service}/v1/score", json={"rows": sample}, headers=bearer(keys["score"])
                )
                ok = r.status_code == 200
                seen.append(
                    (
                        r.status_code,
                        r.json()["model_version"] if ok else r.text,
                        [s["score"] for s in r.json()["scores"]] if ok else [],
                    )
                )

    shorter = trained_model.booster.model_to_string(num_iteration=10)
    other = dataclasses.replace(
        trained_model, booster=lgb.Booster(model_str=shorter), best_iteration=10
    )
    matrix = trained_model.contract.encode_rows(sample)
    workers = [threading.Thread(target=hammer) for _ in range(8)]
    for w in workers:
        w.start()
    registry = Registry(settings)
    try:
        time.sleep(1.0)
        newer = registry.register(other)
        registry.promote(newer.version, by="tests")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(v == newer.version for _, v, _ in seen[-20:]):
            time.sleep(0.2)
        time.sleep(1.0)
    finally:
        stop.set()
        for w in workers:
            w.join()
        registry.promote(champion.version, by="tests")
    failures = [s[:2] for s in seen if s[0] != 200]
    assert not failures, failures[:5]
    expected = {
        champion.version: trained_model.booster.predict(matrix),
        newer.version: other.booster.predict(matrix),
    }
    assert not np.allclose(expected[champion.version], expected[newer.version])
    for _, version, scores in seen:
        assert version in expected, version
        np.testing.assert_array_equal(np.array(scores), expected[version])
    versions = [v for _, v, _ in seen]
    assert champion.version in versions and newer.version in versions
    switched = versions.index(newer.version)
    assert all(v == newer.version for v in versions[switched + 50 :])
