"""Unsubscribe links opened in a mail client, through the real app: the GET page changes
nothing, its form unsubscribes from that brand and channel only, the RFC 8058 one-click
POST still answers JSON, and bad links get an HTML page without the token."""

from __future__ import annotations

import os
import secrets

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from sluice.channels.unsubscribe import (
    ENV,
    Keyring,
    Unsubscribe,
    keyring_file,
    make_token,
    secret,
)
from sluice.serve.backoffice_api import create_backoffice_api
from sluice.settings import SluiceSettings
from sluice.store import connect
from sluice.store.events import EventStore
from sluice.store.suppressions import Suppressions

FORM = {"confirm": "unsubscribe"}
ONE_CLICK = {"content-type": "application/x-www-form-urlencoded"}


def _client(settings: SluiceSettings) -> TestClient:
    from sluice.auth import KeyStore

    api = create_backoffice_api(KeyStore(settings.home_dir / "keys.json"), settings)
    return TestClient(api)


def _token(settings: SluiceSettings, brand: str = "brand-a", channel: str = "email") -> str:
    return make_token(Unsubscribe("c7", brand, channel, "run-1"), secret(settings.home_dir))


def _entries(settings: SluiceSettings, brand: str) -> list[tuple[str, str, str]]:
    found = Suppressions(connect(settings.effective_database_url)).lookup(["c7"], brand)
    return sorted((s.channel, s.brand, s.reason) for s in found.get("c7", []))


def _is_page(r: Response, status: int, token: str) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "form-action 'self'" in csp
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["cache-control"] == "no-store"
    assert token not in r.text and "<script" not in r.text and "http" not in r.text
    return r.text


def test_the_page_asks_and_changes_nothing(db_settings: SluiceSettings) -> None:
    client = _client(db_settings)
    token = _token(db_settings)
    for _ in range(3):  # a link scanner, a preview, then the person
        page = _is_page(client.get(f"/v1/unsubscribe/{token}"), 200, token)
        assert "Stop emails from brand-a?" in page
        assert '<form method="post">' in page and 'name="confirm" value="unsubscribe"' in page
    assert _entries(db_settings, "brand-a") == []
    assert EventStore(connect(db_settings.effective_database_url)).count() == 0


def test_the_page_escapes_what_the_token_carries(db_settings: SluiceSettings) -> None:
    client = _client(db_settings)
    token = _token(db_settings, brand="<b>&\"'", channel="<i>")
    page = _is_page(client.get(f"/v1/unsubscribe/{token}"), 200, token)
    assert "Stop &lt;i&gt; from &lt;b&gt;&amp;&quot;&#x27;?" in page
    assert "<b>" not in page and "<i>" not in page


def test_the_form_unsubscribes_from_that_brand_and_channel_only(
    db_settings: SluiceSettings,
) -> None:
    client = _client(db_settings)
    token = _token(db_settings, channel="sms")
    page = _is_page(client.post(f"/v1/unsubscribe/{token}", data=FORM), 200, token)
    assert "You are unsubscribed" in page and "no more text messages from brand-a" in page
    assert _entries(db_settings, "brand-a") == [("sms", "brand-a", "unsubscribed")]
    assert _entries(db_settings, "brand-b") == []  # another brand may still write
    again = _is_page(client.post(f"/v1/unsubscribe/{token}", data=FORM), 200, token)
    assert "You were already unsubscribed" in again
    one_click = client.post(f"/v1/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click")
    assert one_click.json() == {"unsubscribed": True, "duplicate": True}
    assert _entries(db_settings, "brand-a") == [("sms", "brand-a", "unsubscribed")]


def test_one_click_post_answers_json_as_before(db_settings: SluiceSettings) -> None:
    client = _client(db_settings)
    token = _token(db_settings)
    r = client.post(
        f"/v1/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK
    )
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == {"unsubscribed": True, "duplicate": False}
    assert _entries(db_settings, "brand-a") == [("email", "brand-a", "unsubscribed")]
    # A form that is not the page's (no confirm=unsubscribe) is a one-click too.
    other = client.post(f"/v1/unsubscribe/{token}", data={"confirm": "yes"})
    assert other.json() == {"unsubscribed": True, "duplicate": True}
    forged = client.post(f"/v1/unsubscribe/{token[:-3]}xyz", headers=ONE_CLICK)
    assert forged.status_code == 404 and forged.json()["field"] == "token"


def test_bad_links_get_an_html_page_without_the_token(db_settings: SluiceSettings) -> None:
    client = _client(db_settings)
    good = _token(db_settings)
    kid, body, mac = good.split(".")
    stranger = Keyring.of(secrets.token_hex(32), origin="test")  # a key this service lacks
    bad = {
        "forged": f"{kid}.{body}.{mac[:-3]}xyz",
        "unknown key": make_token(Unsubscribe("c7", "brand-a", "email", "r"), stranger),
        "old format": f"{body}.{mac}",
        "malformed": "not-a-token",
        "too many parts": f"{kid}.{body}.{mac}.x",
        "too long": f"{kid}.{'A' * 2000}.{mac}",
        "not ASCII": f"{kid}.{body}é.{mac}",
    }
    for what, token in bad.items():
        page = _is_page(client.get(f"/v1/unsubscribe/{token}"), 404, token)
        assert "This unsubscribe link is not valid" in page, what
        if what in {"forged", "unknown key", "old format"}:
            form = client.post(f"/v1/unsubscribe/{token}", data=FORM)
            assert "not valid" in _is_page(form, 404, token), what
    assert _entries(db_settings, "brand-a") == []


def test_an_unreadable_keyring_is_a_503_page(fresh_settings: SluiceSettings) -> None:
    if os.environ.get(ENV) is not None:
        pytest.skip(f"{ENV} is set here: the keyring file is not read")
    client = _client(fresh_settings)
    token = _token(fresh_settings)
    keyring_file(fresh_settings.home_dir).write_text("")  # emptied: refused, never replaced
    page = _is_page(client.get(f"/v1/unsubscribe/{token}"), 503, token)
    assert "unavailable" in page
    assert _is_page(client.post(f"/v1/unsubscribe/{token}", data=FORM), 503, token)
