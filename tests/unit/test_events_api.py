"""``POST /v1/events`` and the one-click unsubscribe route, through the real app."""

from __future__ import annotations

from fastapi.testclient import TestClient

from sluice.auth import KeyStore, Scope
from sluice.channels.unsubscribe import Unsubscribe, make_token, secret
from sluice.serve.backoffice_api import create_backoffice_api
from sluice.settings import SluiceSettings
from sluice.store import connect
from sluice.store.suppressions import Suppressions

WHEN = "2026-07-02T10:00:00+02:00"


def _client(settings: SluiceSettings) -> tuple[TestClient, dict[str, str]]:
    store = KeyStore(settings.home_dir / "keys.json")
    keys = {
        name: store.create(name, scopes)[0]
        for name, scopes in {"events": (Scope.EVENTS,), "score": (Scope.SCORE,)}.items()
    }
    api = create_backoffice_api(store, settings)
    return TestClient(api), keys


def test_events_need_the_events_scope_and_are_validated_one_by_one(
    db_settings: SluiceSettings,
) -> None:
    client, keys = _client(db_settings)
    body = {
        "events": [
            {"event_id": "e1", "type": "click", "customer_id": "c1", "occurred_at": WHEN},
            {"event_id": "e2", "type": "conversion", "customer_id": "c1", "occurred_at": WHEN},
            {"event_id": "e1", "type": "click", "customer_id": "c1", "occurred_at": WHEN},
        ]
    }
    assert client.post("/v1/events", json=body).status_code == 401
    wrong = client.post(
        "/v1/events", json=body, headers={"Authorization": f"Bearer {keys['score']}"}
    )
    assert wrong.status_code == 403 and wrong.json()["code"] == "forbidden"
    h = {"Authorization": f"Bearer {keys['events']}"}
    r = client.post("/v1/events", json=body, headers=h)
    assert r.status_code == 200
    out = r.json()
    assert (out["accepted"], out["duplicates"]) == (1, 1)
    assert out["rejected"] == [
        {"index": 1, "field": "revenue", "reason": "a conversion needs its revenue (0 if none)"}
    ]
    empty = client.post("/v1/events", json={"events": []}, headers=h)
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "events"


def test_one_click_unsubscribe_lands_as_a_suppression_once(
    db_settings: SluiceSettings,
) -> None:
    client, _ = _client(db_settings)
    key = secret(db_settings.home_dir)
    token = make_token(Unsubscribe("c7", "sluice-outdoors", "email", "run-9"), key)
    first = client.post(f"/v1/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click")
    assert first.status_code == 200 and first.json() == {"unsubscribed": True, "duplicate": False}
    again = client.post(f"/v1/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click")
    assert again.json() == {"unsubscribed": True, "duplicate": True}
    found = Suppressions(connect(db_settings.effective_database_url)).lookup(
        ["c7"], "sluice-outdoors"
    )["c7"]
    assert [(s.reason, s.channel, s.brand) for s in found] == [
        ("unsubscribed", "email", "sluice-outdoors")
    ]
    forged = client.post(f"/v1/unsubscribe/{token[:-3]}xyz")
    assert forged.status_code == 404 and forged.json()["field"] == "token"
    malformed = client.post("/v1/unsubscribe/not-a-token")
    assert malformed.status_code == 422 and malformed.json()["errors"][0]["field"] == "path.token"
