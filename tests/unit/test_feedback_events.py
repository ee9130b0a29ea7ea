"""Outcome events: validation naming the field, deduplication, immediate suppression,
and the unsubscribe-then-send race (on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from sluice.channels.outbox import OutboxTransport
from sluice.channels.unsubscribe import Keyring, Unsubscribe, make_token
from sluice.coordinator.delivery import Deliverer
from sluice.feedback.ingest import ingest, unsubscribe_event
from sluice.store import connect
from sluice.store.events import EventStore
from sluice.store.incidents import Incidents
from sluice.store.ledger import Ledger, Reservation
from sluice.store.suppressions import Suppressions

KEY = Keyring.of("0123456789abcdef" * 4)
WHEN = "2026-07-02T10:00:00+00:00"


def ev(event_id: str, kind: str = "open", customer: str = "c1", **extra: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": kind,
        "customer_id": customer,
        "occurred_at": WHEN,
        **extra,
    }


def test_events_are_deduplicated_by_id_within_and_across_batches(database_url: str) -> None:
    engine = connect(database_url)
    first = ingest(engine, [ev("e1"), ev("e2", "click"), ev("e1")], "test", KEY)
    assert (first.accepted, first.duplicates) == (2, 1)
    again = ingest(engine, [ev("e2", "click"), ev("e3", "conversion", revenue=12.5)], "t", KEY)
    assert (again.accepted, again.duplicates) == (1, 1)
    assert EventStore(engine).count() == 3


@pytest.mark.parametrize(
    ("event", "field", "reason"),
    [
        (ev("x", "conversion"), "revenue", "a conversion needs its revenue"),
        (ev("x", revenue=3.0), "revenue", "only conversions carry revenue"),
        (ev("x", occurred_at="2026-07-02T10:00:00"), "occurred_at", "timezone"),
        (ev("x", "refund"), "type", "unknown event type 'refund'"),
        (ev("x", customer=""), "customer_id", "at least 1 character"),
        ({"event_id": "x", "type": "open", "occurred_at": WHEN}, "customer_id", "required"),
        (ev("x", token="abc"), "token", "only unsubscribe events carry a token"),
        (ev("x", "conversion", revenue=-1), "revenue", "greater than or equal to 0"),
        (ev("x", extra_field=1), "extra_field", "Extra inputs are not permitted"),
    ],
)
def test_a_bad_event_is_rejected_with_field_and_reason_and_the_rest_stored(
    database_url: str, event: dict[str, Any], field: str, reason: str
) -> None:
    engine = connect(database_url)
    result = ingest(engine, [ev("good-1"), event, ev("good-2")], "test", KEY)
    assert result.accepted == 2
    [rejected] = result.rejected
    assert rejected.index == 1 and rejected.field == field
    assert reason in rejected.reason


def test_unsubscribe_bounce_and_complaint_suppress_at_once(database_url: str) -> None:
    engine = connect(database_url)
    token = make_token(Unsubscribe("c9", "acme", "email", "run-1"), KEY)
    result = ingest(
        engine,
        [
            {"event_id": "u1", "type": "unsubscribe", "token": token, "occurred_at": WHEN},
            ev("b1", "bounce", "c2", channel="email"),
            ev("p1", "complaint", "c3", channel="sms"),
            ev("o1", "open", "c4"),
        ],
        "test",
        KEY,
    )
    assert result.accepted == 4 and result.suppressions == 3
    found = Suppressions(engine).lookup(["c9", "c2", "c3", "c4"], "acme")
    assert [(s.reason, s.channel, s.brand) for s in found["c9"]] == [
        ("unsubscribed", "email", "acme")
    ]
    assert [(s.reason, s.channel) for s in found["c2"]] == [("bounced", "email")]
    assert [(s.reason, s.channel) for s in found["c3"]] == [("complained", "*")]  # every channel
    assert "c4" not in found
    # the same unsubscribe again is a duplicate and adds nothing
    again = ingest(engine, [unsubscribe_event(token, WHEN)] * 2, "one-click", KEY)
    assert again.suppressions == 0 and again.accepted == 1 and again.duplicates == 1


def test_a_forged_or_mismatched_token_is_rejected(database_url: str) -> None:
    engine = connect(database_url)
    token = make_token(Unsubscribe("c9", "acme", "email", "run-1"), KEY)
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    result = ingest(
        engine,
        [
            {"event_id": "u1", "type": "unsubscribe", "token": forged, "occurred_at": WHEN},
            {**ev("u2", "unsubscribe", "someone-else"), "token": token},
        ],
        "test",
        KEY,
    )
    assert result.accepted == 0 and result.suppressions == 0
    assert [(r.index, r.field) for r in result.rejected] == [(0, "token"), (1, "customer_id")]


def _reserve(ledger: Ledger, key: str, customer: str, arm: str = "main") -> None:
    ledger.reserve(
        [
            Reservation(
                key,
                "run-1",
                "camp",
                customer,
                "email",
                "outbox",
                f"d-{key}",
                "offer",
                arm,
                date(2026, 7, 2),
                {
                    "channel": "email",
                    "address": f"{customer}@x.example",
                    "run_id": "run-1",
                    "campaign_id": "camp",
                    "customer_id": customer,
                    "decision_id": f"d-{key}",
                    "offer_id": "offer",
                    "subject": "s",
                    "body": "b",
                    "cta": "c",
                },
            )
        ],
        cap=1,
        now=datetime(2026, 7, 2, 9, tzinfo=UTC),
    )


def test_unsubscribe_then_send_race_the_reserved_message_is_never_sent(
    database_url: str, tmp_path: Path
) -> None:
    """Gated and reserved before the unsubscribe arrived; the claim sees the suppression."""
    engine = connect(database_url)
    ledger = Ledger(engine)
    _reserve(ledger, "k-gone", "c-gone")
    _reserve(ledger, "k-stays", "c-stays")
    assert ledger.contacts("c-gone") == {date(2026, 7, 2): 1}
    token = make_token(Unsubscribe("c-gone", "acme", "email", "run-1"), KEY)
    ingest(engine, [unsubscribe_event(token, WHEN)], "one-click", KEY)
    outbox = tmp_path / "outbox"
    transport = OutboxTransport(outbox, "run-1", "email")
    deliverer = Deliverer(ledger, {"email": transport}, {"email": 2}, brand="acme")
    try:
        outcome = deliverer.deliver(ledger.pending("run-1"))
    finally:
        deliverer.close()
    assert outcome == {"sent": 1, "suppressed": 1}
    states = ledger.states(["k-gone", "k-stays"])
    assert states == {"k-gone": "suppressed", "k-stays": "sent"}
    written = "".join(p.read_text() for p in outbox.rglob("*.jsonl"))
    assert "c-stays" in written and "c-gone" not in written
    assert ledger.contacts("c-gone") == {date(2026, 7, 2): 0}  # no longer counts on the cap


def test_a_paused_arm_is_never_claimed(database_url: str, tmp_path: Path) -> None:
    engine = connect(database_url)
    ledger = Ledger(engine)
    _reserve(ledger, "k-canary", "c1", arm="canary")
    _reserve(ledger, "k-main", "c2", arm="main")
    incident = Incidents(engine).open("camp", "run-1", "canary", "complaints", {"why": 1}, [])
    deliverer = Deliverer(
        ledger, {"email": OutboxTransport(tmp_path, "run-1", "email")}, {"email": 1}, brand="acme"
    )
    try:
        assert deliverer.deliver(ledger.pending("run-1")) == {"sent": 1, "suppressed": 1}
    finally:
        deliverer.close()
    assert ledger.states(["k-canary", "k-main"]) == {"k-canary": "suppressed", "k-main": "sent"}
    resolved = Incidents(engine).resolve(incident.incident_id, "ana", "checked", resume=True)
    assert resolved.status == "resolved" and resolved.resolved_by == "ana"
    from sluice.store.incidents import ArmStates

    assert ArmStates(engine).paused("camp") == {}


def test_tokens_and_times_from_anywhere_are_refused_not_crashed_on(database_url: str) -> None:
    engine = connect(database_url)
    result = ingest(
        engine,
        [
            {"event_id": "u1", "type": "unsubscribe", "token": "ä.ö", "occurred_at": WHEN},
            ev("t1", occurred_at="0001-01-01T00:00:00+01:00"),
        ],
        "test",
        KEY,
    )
    assert result.accepted == 0
    assert [(r.field, r.reason) for r in result.rejected] == [
        ("token", "not a valid unsubscribe token"),
        ("occurred_at", "must be between the years 2000 and 2200"),
    ]
