"""Both Serve apps of deployments/decision.yaml over real HTTP: the key matrix on every
route (no key, unknown, revoked, wrong scope, brand-limited), and unsubscribe links
through the back office, whose replicas share the database with everything else."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

from sluice.auth import KeyStore, Scope
from sluice.channels.unsubscribe import Unsubscribe, make_token, secret
from sluice.registry import VersionInfo
from sluice.settings import SluiceSettings
from sluice.store import connect
from sluice.store.suppressions import Suppressions

OFFICE = "/backoffice"
WHEN = "2026-07-02T10:00:00+02:00"


def _event(kind: str = "click", **fields: Any) -> dict[str, Any]:
    n = time.monotonic_ns()
    return {"event_id": f"bo-{n}", "type": kind, "customer_id": "c1", "occurred_at": WHEN, **fields}


@pytest.fixture(scope="module")
def keys(settings: SluiceSettings, service: str) -> dict[str, str]:
    store = KeyStore(settings.keys_file)
    specs: dict[str, tuple[tuple[Scope, ...], tuple[str, ...] | None]] = {
        "score": ((Scope.SCORE,), None),
        "decide": ((Scope.DECIDE,), None),
        "events": ((Scope.EVENTS,), None),
        "admin": ((Scope.ADMIN,), None),
        "shop-z": ((Scope.EVENTS,), ("brand-z",)),
        "revoked": (tuple(Scope), None),
    }
    made = {}
    for name, (scopes, brands) in specs.items():
        made[name], _ = store.create(f"bo-{name}-{time.monotonic_ns()}", scopes, brands)
    revoked = next(r.name for r in store.list() if r.name.startswith("bo-revoked"))
    store.revoke(revoked)
    return made


@pytest.fixture(scope="module")
def routes(features_dir: Path) -> list[tuple[str, str, Scope | None, Any, int]]:
    """(method, path, scope needed, body, status with the right key) for every route of
    both apps that takes a key."""
    row = pq.read_table(features_dir / "audience.parquet").slice(0, 1).to_pylist()[0]
    features = {k: v for k, v in row.items() if k != "customer_id"}
    customer = {"customer_id": row["customer_id"], "country": "DE", "consents": {"email": True}}
    entry = {"entries": [{"customer_id": "c1"}]}
    return [
        ("POST", "/v1/score", Scope.SCORE, {"rows": [row]}, 200),
        ("POST", "/v1/decide", Scope.DECIDE, {"customer": customer, "features": features}, 200),
        ("GET", "/v1/models", None, None, 200),
        ("GET", f"{OFFICE}/v1/admin/reviews", Scope.ADMIN, None, 200),
        ("GET", f"{OFFICE}/v1/admin/reviews/nope", Scope.ADMIN, None, 404),
        ("POST", f"{OFFICE}/v1/admin/reviews/nope/approve", Scope.ADMIN, {"by": "a"}, 404),
        (
            "POST",
            f"{OFFICE}/v1/admin/reviews/nope/reject",
            Scope.ADMIN,
            {"by": "a", "reason": "no"},
            404,
        ),
        ("GET", f"{OFFICE}/v1/admin/incidents", Scope.ADMIN, None, 200),
        ("GET", f"{OFFICE}/v1/admin/incidents/nope", Scope.ADMIN, None, 404),
        ("POST", f"{OFFICE}/v1/events", Scope.EVENTS, {"events": [_event()]}, 200),
        ("POST", f"{OFFICE}/v1/journeys/nope/entries", Scope.EVENTS, entry, 404),
    ]


def _call(service: str, method: str, path: str, body: Any, key: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.request(method, f"{service}{path}", json=body, headers=headers, timeout=30)


def test_the_key_matrix_on_every_route_of_both_apps(
    service: str,
    keys: dict[str, str],
    routes: list[tuple[str, str, Scope | None, Any, int]],
    champion: VersionInfo,
) -> None:
    by_scope = {Scope.SCORE: "score", Scope.DECIDE: "decide", Scope.EVENTS: "events"}
    by_scope[Scope.ADMIN] = "admin"
    for method, path, scope, body, ok in routes:
        where = f"{method} {path}"
        for key in (None, "slk_000000000000_nope", keys["revoked"]):
            r = _call(service, method, path, body, key)
            assert r.status_code == 401, (where, key, r.text)
            assert r.json()["code"] == "unauthorized" and r.headers["www-authenticate"] == "Bearer"
        right = keys[by_scope[scope]] if scope else keys["score"]
        r = _call(service, method, path, body, right)
        assert r.status_code == ok, (where, r.text)
        if scope is None:
            continue
        wrong = keys["score"] if scope is not Scope.SCORE else keys["decide"]
        r = _call(service, method, path, body, wrong)
        assert r.status_code == 403 and r.json()["code"] == "forbidden", (where, r.text)
        if scope is not Scope.EVENTS:  # a brand-limited events key has no other scope
            r = _call(service, method, path, body, keys["shop-z"])
            assert r.status_code == 403, (where, r.text)

    # A brand-limited key posts only what its brands may: no unknown runs, no suppression
    # for every brand (that needs admin).
    events = f"{OFFICE}/v1/events"
    limited = {
        "events.0.run_id": _event(run_id="run-nobody-knows"),
        "events.0.brand": _event("unsubscribe"),
    }
    for field, event in limited.items():
        r = _call(service, "POST", events, {"events": [event]}, keys["shop-z"])
        assert r.status_code == 403 and r.json()["field"] == field, r.text
    mine = _event("bounce", brand="brand-z")
    assert _call(service, "POST", events, {"events": [mine]}, keys["shop-z"]).status_code == 200


def _suppressed(settings: SluiceSettings, customer: str, brand: str) -> list[tuple[str, str]]:
    found = Suppressions(connect(settings.effective_database_url)).lookup([customer], brand)
    return sorted((s.channel, s.reason) for s in found.get(customer, []))


def test_an_emailed_token_unsubscribes_through_the_page_and_one_click(
    settings: SluiceSettings, service: str
) -> None:
    keys = secret(settings.home_dir)  # the key the back office's replicas verify with
    page_token = make_token(Unsubscribe("bo-c1", "brand-y", "email", "run-bo"), keys)
    url = f"{service}{OFFICE}/v1/unsubscribe/{page_token}"
    page = httpx.get(url)
    assert page.status_code == 200 and '<form method="post">' in page.text
    assert _suppressed(settings, "bo-c1", "brand-y") == []  # opening the link changes nothing
    done = httpx.post(url, data={"confirm": "unsubscribe"})
    assert done.status_code == 200 and "You are unsubscribed" in done.text
    assert _suppressed(settings, "bo-c1", "brand-y") == [("email", "unsubscribed")]
    assert _suppressed(settings, "bo-c1", "brand-x") == []  # that brand only

    one_click = make_token(Unsubscribe("bo-c2", "brand-y", "sms", "run-bo"), keys)
    r = httpx.post(
        f"{service}{OFFICE}/v1/unsubscribe/{one_click}",
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200 and r.json() == {"unsubscribed": True, "duplicate": False}
    assert _suppressed(settings, "bo-c2", "brand-y") == [("sms", "unsubscribed")]
    forged = httpx.post(f"{service}{OFFICE}/v1/unsubscribe/{one_click[:-3]}xyz")
    assert forged.status_code == 404 and forged.json()["field"] == "token"
