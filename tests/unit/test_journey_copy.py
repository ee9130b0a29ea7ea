"""A journey's entry properties in its copy, on SQLite and PostgreSQL: ``{entry.<name>}``
slots are filled from the event that entered the customer, the gates judge the copy
as filled, the audit record keeps the values (so a replay rebuilds the same copy), and
a slot whose property the entry lacks fails the message instead of going out empty."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from tests.unit.test_journeys import World, cart

from sluice.audit.replay import replay_run
from sluice.settings import SluiceSettings
from sluice.store.schema import audit

REMINDER = {
    "offer_id": "cart-reminder",
    "name": "Cart reminder",
    "product": "Your cart",
    "value": 10.0,
    "valid_from": "+0d",
    "valid_until": "+30d",
    "url": "https://shop.example.com/cart",
    "channels": ["email", "sms"],
    "fallback_copy": {
        "email": {
            "subject": "{first_name}, your cart {entry.cart_id} is waiting",
            "body": "Hi {first_name},\n\nThe {entry.items} in cart {entry.cart_id} are "
            "still yours: https://shop.example.com/cart\n",
            "cta": "Back to my cart",
        },
        "sms": {"text": "Cart {entry.cart_id} is waiting: https://shop.example.com/cart"},
    },
}


def _catalog(root: Path) -> Path:
    path = root / "offers.yaml"
    path.write_text(
        yaml.safe_dump({"name": "carts", "reporting_currency": "USD", "offers": [REMINDER]})
    )
    return path


def _records(w: World) -> dict[str, dict[str, Any]]:
    with w.db.connect() as conn:
        rows = conn.execute(
            select(audit.c.customer_id, audit.c.run_id, audit.c.outcome, audit.c.gate,
                   audit.c.reason, audit.c.slots)
        ).all()  # fmt: skip
    return {str(r.customer_id): r._asdict() for r in rows}


def test_entry_properties_fill_the_copy_and_a_missing_one_fails_the_message(
    db_settings: SluiceSettings, tmp_path: Path
) -> None:
    steps = [
        {"id": "remind", "send": {"channel": "email", "offer": {"id": "cart-reminder"}}},
        {"id": "later", "wait": {"for": "1d"}},
    ]
    w = World(db_settings, tmp_path, 3, steps=steps, offers=str(_catalog(tmp_path)))
    with_items = cart("c000", "k-0001")
    with_items["properties"]["items"] = ["trail boots", "wool socks"]
    odd = cart("c001", "k-0002")
    odd["properties"]["items"] = "rain jacket"
    w.events(with_items, odd, cart("c002", "k-0003"))  # c002's cart has no items
    w.at(timedelta(seconds=1))

    lines = [
        json.loads(line)
        for p in (tmp_path / "outbox").rglob("*.jsonl")
        for line in p.read_text().splitlines()
    ]
    sent = {m["customer_id"]: m for m in lines}
    assert sorted(sent) == ["c000", "c001"]
    assert sent["c000"]["subject"] == "Ana, your cart k-0001 is waiting"
    assert "The trail boots, wool socks in cart k-0001 are still yours" in sent["c000"]["body"]
    assert "The rain jacket in cart k-0002" in sent["c001"]["body"]

    records = _records(w)
    assert records["c002"]["outcome"] == "rejected"
    assert records["c002"]["gate"] == "injection"
    assert "unrendered" in records["c002"]["reason"]
    slots = json.loads(records["c000"]["slots"])
    assert slots["entry.cart_id"] == "k-0001"
    assert slots["entry.items"] == "trail boots, wool socks"
    assert slots["first_name"] == "Ana"
    assert w.ledger("c002") == []

    # The audit keeps what the copy was filled with: a replay rebuilds the same messages
    # and the gates come to the same verdicts.
    report = replay_run(str(records["c000"]["run_id"]), w.url)
    assert report.checked > 0 and report.differing == 0
    w.engine.close()
