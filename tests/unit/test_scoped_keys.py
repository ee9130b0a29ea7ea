"""Scopes that fit, through the real app: an ``events`` key limited to brands posts only
its brands' events, runs and suppressions; a suppression for every brand needs
``admin``; keys without brands work as before; the interactive docs are off unless
configured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sluice.auth import KeyStore, Scope
from sluice.channels.unsubscribe import Unsubscribe, make_token, secret
from sluice.contracts.campaign import CampaignSpec
from sluice.errors import InputError, UnavailableError
from sluice.feedback.scope import brand_of_run
from sluice.serve.backoffice_api import create_backoffice_api
from sluice.settings import SluiceSettings
from sluice.store import connect
from sluice.store.events import EventStore
from sluice.store.journeys import Journeys
from sluice.store.runs import Runs
from sluice.store.suppressions import Suppressions

WHEN = "2026-07-02T10:00:00+02:00"
KEYS = {
    "shop-a": ((Scope.EVENTS,), ("brand-a", "brand-c")),
    "events": ((Scope.EVENTS,), None),
    "admin": ((Scope.ADMIN,), None),
}


def _app(settings: SluiceSettings, docs: bool = False) -> Any:
    store = KeyStore(settings.home_dir / "keys.json")
    return create_backoffice_api(store, settings, docs=docs)


def _world(settings: SluiceSettings, tmp: Path) -> tuple[TestClient, dict[str, dict[str, str]]]:
    """The app, a key per :data:`KEYS`, a run of a brand-a and of a brand-b campaign, and a
    brand-b journey entered through the API."""
    store = KeyStore(settings.home_dir / "keys.json")
    headers = {
        name: {"Authorization": f"Bearer {store.create(name, scopes, brands)[0]}"}
        for name, (scopes, brands) in KEYS.items()
    }
    engine = connect(settings.effective_database_url)
    for brand in ("brand-a", "brand-b"):
        spec = CampaignSpec.model_validate(
            {
                "campaign_id": f"spring-{brand}",
                "name": "Spring",
                "brand": brand,
                "audience": {"features": str(tmp / "f.parquet"), "customers": str(tmp / "c.pq")},
                "channels": {"email": {"transport": "outbox", "path": str(tmp / "outbox")}},
            }
        )
        Runs(engine).start(f"run-{brand}", spec.campaign_id, spec.public(), dry_run=False)
    Journeys(engine).deploy("spring.b", _journey("spring.b", "brand-b", tmp), "test")
    return TestClient(_app(settings)), headers


def _journey(journey_id: str, brand: str, tmp: Path) -> dict[str, Any]:
    return {
        "journey_id": journey_id,
        "name": "Spring",
        "brand": brand,
        "customers": str(tmp / "customers.parquet"),
        "channels": {"email": {"transport": "outbox", "path": str(tmp / "outbox")}},
        "gates": {"quiet_hours": None, "frequency_cap": None},
        "entry": {"api": True},
        "holdout_pct": 0,
        "steps": [{"id": "hello.mail", "send": {"channel": "email", "offer": {"id": "tent"}}}],
    }


def _event(n: int, kind: str = "click", **fields: Any) -> dict[str, Any]:
    return {"event_id": f"e{n}", "type": kind, "customer_id": "c1", "occurred_at": WHEN, **fields}


def test_a_brand_limited_key_posts_only_its_brands(
    db_settings: SluiceSettings, tmp_path: Path
) -> None:
    client, h = _world(db_settings, tmp_path)
    engine = connect(db_settings.effective_database_url)

    def post(key: str, *events: dict[str, Any]) -> Any:
        return client.post("/v1/events", json={"events": list(events)}, headers=h[key])

    allowed = post(
        "shop-a",
        _event(1, run_id="run-brand-a"),
        _event(2, "unsubscribe", brand="brand-a", channel="email"),
        _event(3, "bounce", brand="brand-c"),
        _event(4, "conversion", revenue=10.0),  # no run, no brand: nothing to limit
    )
    assert allowed.status_code == 200 and allowed.json()["accepted"] == 4
    assert allowed.json()["suppressions"] == 2

    refused = {
        "events.1.run_id": post("shop-a", _event(10), _event(11, run_id="run-brand-b")),
        "events.0.run_id": post("shop-a", _event(12, run_id="run-nobody-knows")),
        "events.0.brand": post("shop-a", _event(13, "unsubscribe", brand="brand-b")),
        "events.2.brand": post("shop-a", _event(14), _event(15), _event(16, "complaint")),
    }
    for field, r in refused.items():
        assert r.status_code == 403, (field, r.text)
        body = r.json()
        assert body["code"] == "forbidden" and body["field"] == field
        assert body["message"].startswith(f"{field}: ")
    assert "needs the 'admin' scope" in refused["events.2.brand"].json()["message"]
    assert "brand-b" not in refused["events.1.run_id"].json()["message"]  # learns nothing
    assert EventStore(engine).count() == 4  # a refused batch stores nothing

    token = make_token(
        Unsubscribe("c9", "brand-b", "email", "run-brand-b"), secret(db_settings.home_dir)
    )
    other_token = post("shop-a", {**_event(20, "unsubscribe", token=token), "customer_id": None})
    assert other_token.status_code == 403 and other_token.json()["field"] == "events.0.token"

    everywhere = _event(30, "unsubscribe")  # no brand: every brand
    assert post("admin", everywhere, _event(31, run_id="run-brand-b")).status_code == 200
    # A key without brands posts for any brand's runs, but a suppression for every brand
    # needs admin from it too.
    unlimited = post("events", _event(32, run_id="run-brand-b"))
    assert unlimited.status_code == 200 and unlimited.json()["accepted"] == 1
    everywhere_again = post("events", _event(33, "complaint"))
    assert everywhere_again.status_code == 403
    assert everywhere_again.json()["field"] == "events.0.brand"
    assert "needs the 'admin' scope" in everywhere_again.json()["message"]
    found = Suppressions(engine).lookup(["c1"], "brand-b")["c1"]
    assert sorted((s.channel, s.brand, s.reason) for s in found) == [("*", "*", "unsubscribed")]


def test_a_brand_limited_key_enters_only_its_brands_journeys(
    db_settings: SluiceSettings, tmp_path: Path
) -> None:
    client, h = _world(db_settings, tmp_path)
    entries = {"entries": [{"customer_id": "c1"}]}
    r = client.post("/v1/journeys/spring.b/entries", json=entries, headers=h["shop-a"])
    assert r.status_code == 403 and r.json()["field"] == "journey_id"
    assert "brand-a, brand-c" in r.json()["message"]


def test_the_brand_of_a_run_a_campaign_or_a_journey_step(
    db_settings: SluiceSettings, tmp_path: Path
) -> None:
    _world(db_settings, tmp_path)
    engine = connect(db_settings.effective_database_url)
    assert brand_of_run(engine, "run-brand-a") == "brand-a"
    assert brand_of_run(engine, "j.spring.b.hello.mail.0") == "brand-b"  # dots in both ids
    for unknown in ("j.spring.b.nostep.0", "j.spring.b.hello.mail.x", "j.other.hello.mail.0"):
        assert brand_of_run(engine, unknown) is None


def test_keys_carry_brands_and_refuse_limits_that_mean_nothing(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    key, record = store.create("shop", (Scope.EVENTS, Scope.SCORE), ("b", "a", "b"))
    assert record.brands == ("b", "a")
    assert store.authenticate(f"Bearer {key}").brands == ("b", "a")
    for scopes, brands, why in [
        ((Scope.ADMIN,), ("a",), "an admin key is not limited"),
        ((Scope.SCORE,), ("a",), "limits the events scope"),
        ((Scope.EVENTS,), (), "at least one brand"),
        ((Scope.EVENTS,), ("Brand A",), "'Brand A' is not a brand"),
    ]:
        with pytest.raises(InputError, match=why) as err:
            store.create("bad", scopes, brands)
        assert err.value.field == "brand"
    # A keys file written before brands existed: its keys are not limited.
    path = tmp_path / "keys.json"
    data = json.loads(path.read_text())
    for k in data["keys"]:
        del k["brands"]
    path.write_text(json.dumps(data))
    assert store.authenticate(f"Bearer {key}").brands is None
    # A hand-edited limit that means nothing fails closed, like any invalid file.
    data["keys"][0].update(scopes=["admin"], brands=["a"])
    path.write_text(json.dumps(data))
    with pytest.raises(UnavailableError):
        store.authenticate(f"Bearer {key}")


def test_keys_cli_takes_brands(tmp_path: Path) -> None:
    env = {**os.environ, "SLUICE_API_KEYS_FILE": str(tmp_path / "k.json"), "COLUMNS": "160"}

    def sluice(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sluice", "keys", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    created = sluice(
        "create", "--name", "shop", "--scopes", "events", "--brand", "a", "--brand", "b"
    )
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout.strip().splitlines()[-1])["brands"] == ["a", "b"]
    listed = json.loads(sluice("list").stdout.strip().splitlines()[-1])["keys"]
    assert listed == [{"name": "shop", "scopes": ["events"], "brands": ["a", "b"], "active": True}]
    refused = sluice("create", "--name", "ops", "--scopes", "admin", "--brand", "a")
    assert refused.returncode != 0 and "--brand: an admin key is not limited" in refused.stderr


def test_docs_are_off_unless_configured(fresh_settings: SluiceSettings) -> None:
    off = TestClient(_app(fresh_settings))
    assert off.get("/docs").status_code == 404 and off.get("/redoc").status_code == 404
    schema = off.get("/openapi.json")
    assert schema.status_code == 200 and "/v1/unsubscribe/{token}" in schema.json()["paths"]
    on = TestClient(_app(fresh_settings, docs=True))
    for path in ("/docs", "/redoc"):
        r = on.get(path)
        assert r.status_code == 200 and "openapi.json" in r.text


def test_the_app_builder_reads_the_docs_setting(fresh_settings: SluiceSettings) -> None:
    from sluice.serve.app import DecisionAppArgs, _settings

    assert SluiceSettings().model_fields["api_docs"].default is False
    assert DecisionAppArgs().api_docs is None
    assert _settings(DecisionAppArgs(api_docs=True)).api_docs is True
    assert _settings(DecisionAppArgs(api_docs=False)).api_docs is False
