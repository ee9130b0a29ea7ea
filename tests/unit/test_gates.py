"""Compliance gates and the chain that runs them."""

from __future__ import annotations

from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from sluice.gates.base import DEFER, FAIL, PASS, GateChain, GateContext, MessageBatch, Verdicts
from sluice.gates.compliance import (
    ConsentGate,
    FrequencyCapGate,
    QuietHoursGate,
    SchemaGate,
    SuppressionGate,
    window_end,
)
from sluice.store import connect
from sluice.store.ledger import Ledger, Reservation
from sluice.store.suppressions import Suppressions

NOON_UTC = datetime(2026, 7, 1, 12, tzinfo=UTC)


def batch(**overrides: list[Any]) -> MessageBatch:
    base: dict[str, list[Any]] = {
        "customer_id": ["c1", "c2", "c3"],
        "channel": ["email", "sms", "email"],
        "email": ["a@example.com", None, "c@example.com"],
        "phone": [None, "+15550001111", None],
        "subject": ["Hi", None, "Hi"],
        "body": ["Body", None, "Body"],
        "cta": ["Go", None, "Go"],
        "text": [None, "Text", None],
        "consent_email": [True, None, True],
        "consent_sms": [None, True, None],
        "consent_push": [None, None, None],
        "time_zone": ["Europe/Berlin", "America/New_York", "Asia/Tokyo"],
    }
    base.update(overrides)
    return MessageBatch(pa.table(base))


def ctx(db: Path | str, now: datetime = NOON_UTC, dry_run: bool = False) -> GateContext:
    """A gate context on a database URL, or on SQLite in a folder."""
    engine = connect(db if isinstance(db, str) else f"sqlite:///{db / 'g.db'}")
    return GateContext(
        "run-1",
        "camp",
        "outdoors",
        now,
        dry_run,
        {"ledger": Ledger(engine), "suppressions": Suppressions(engine)},
    )


def reasons(v: Verdicts) -> list[str]:
    return [str(r) for r in v.reason]


def test_schema_gate(tmp_path: Path) -> None:
    gate = SchemaGate({"email", "sms"})
    assert reasons(gate.evaluate(batch(), ctx(tmp_path))) == ["ok", "ok", "ok"]
    bad = batch(
        channel=["email", "sms", "push"],
        email=["not-an-address", None, None],
        phone=[None, "555", None],
    )
    assert reasons(gate.evaluate(bad, ctx(tmp_path))) == [
        "invalid_address",
        "invalid_address",
        "unknown_channel",
    ]
    missing = batch(email=[None, None, "c@example.com"], cta=["Go", None, " "])
    assert reasons(gate.evaluate(missing, ctx(tmp_path))) == [
        "missing_address",
        "ok",
        "missing_copy",
    ]


def test_consent_gate_withdrawn_and_absent_both_fail(tmp_path: Path) -> None:
    v = ConsentGate().evaluate(
        batch(consent_email=[True, None, False], consent_sms=[None, None, None]), ctx(tmp_path)
    )
    assert reasons(v) == ["ok", "no_consent_record", "consent_withdrawn"]
    assert list(v.outcome) == [PASS, FAIL, FAIL]


def test_suppression_gate_global_brand_and_channel(database_url: str) -> None:
    c = ctx(database_url)
    store: Suppressions = c.services["suppressions"]
    store.add("c1", "unsubscribed", channel="email", brand="outdoors")
    store.add("c2", "bounced", channel="email")  # email only: c2's SMS still goes
    store.add("c3", "complained", brand="another-brand")  # another brand's list
    v = SuppressionGate().evaluate(batch(), c)
    assert reasons(v) == ["unsubscribed", "ok", "ok"]
    store.add("c3", "complained")  # global
    assert reasons(SuppressionGate().evaluate(batch(), c))[2] == "complained"


@pytest.mark.parametrize(
    ("now", "zone", "expected_end"),
    [
        # 23:30 in Berlin (summer, UTC+2): quiet until 08:00 local next day = 06:00 UTC.
        (
            datetime(2026, 7, 1, 21, 30, tzinfo=UTC),
            "Europe/Berlin",
            datetime(2026, 7, 2, 6, tzinfo=UTC),
        ),
        # 03:00 in Berlin: quiet until 08:00 the same day.
        (
            datetime(2026, 7, 1, 1, 0, tzinfo=UTC),
            "Europe/Berlin",
            datetime(2026, 7, 1, 6, tzinfo=UTC),
        ),
        # 14:00 in Berlin: not quiet.
        (datetime(2026, 7, 1, 12, 0, tzinfo=UTC), "Europe/Berlin", None),
        # Night before the spring-forward in New York (2026-03-08): 08:00 EDT is 12:00 UTC.
        (
            datetime(2026, 3, 8, 6, 30, tzinfo=UTC),
            "America/New_York",
            datetime(2026, 3, 8, 12, tzinfo=UTC),
        ),
        # Night before the fall-back (2026-11-01): 08:00 EST is 13:00 UTC.
        (
            datetime(2026, 11, 1, 5, 30, tzinfo=UTC),
            "America/New_York",
            datetime(2026, 11, 1, 13, tzinfo=UTC),
        ),
        # India is UTC+5:30: 22:00 local, quiet until 08:00 local = 02:30 UTC.
        (
            datetime(2026, 7, 1, 16, 30, tzinfo=UTC),
            "Asia/Kolkata",
            datetime(2026, 7, 2, 2, 30, tzinfo=UTC),
        ),
    ],
)
def test_quiet_hours_are_recipient_local_and_dst_correct(
    now: datetime, zone: str, expected_end: datetime | None
) -> None:
    from zoneinfo import ZoneInfo

    assert window_end(now.astimezone(ZoneInfo(zone)), time(21), time(8)) == expected_end


def test_quiet_hours_gate_defers_to_the_end_of_the_window(tmp_path: Path) -> None:
    now = datetime(2026, 7, 1, 21, 30, tzinfo=UTC)  # 23:30 Berlin, 17:30 New York, 06:30 Tokyo
    v = QuietHoursGate(time(21), time(8)).evaluate(batch(), ctx(tmp_path, now))
    assert list(v.outcome) == [DEFER, PASS, DEFER]
    assert datetime.fromtimestamp(v.defer_until[0] / 1e6, UTC) == datetime(
        2026, 7, 2, 6, tzinfo=UTC
    )
    assert datetime.fromtimestamp(v.defer_until[2] / 1e6, UTC) == datetime(
        2026, 7, 1, 23, tzinfo=UTC
    )


def test_frequency_cap_gate_counts_existing_sends(database_url: str) -> None:
    c = ctx(database_url)
    ledger: Ledger = c.services["ledger"]
    ledger.reserve(
        [
            Reservation(
                "k",
                "other-run",
                "camp",
                "c1",
                "email",
                "smtp",
                None,
                None,
                None,
                datetime(2026, 7, 1).date(),
                {},
            )
        ],
        cap=1,
    )
    v = FrequencyCapGate(per_day=1).evaluate(batch(), c)
    assert reasons(v) == ["frequency_cap", "ok", "ok"]
    dry = FrequencyCapGate(per_day=1).evaluate(
        batch(customer_id=["c2", "c2", "c3"]), ctx(database_url, dry_run=True)
    )
    assert reasons(dry) == ["ok", "frequency_cap", "ok"]  # a dry run counts what it would send


def test_chain_stops_at_the_first_failure_and_keeps_deferrals_going(database_url: str) -> None:
    now = datetime(2026, 7, 1, 21, 30, tzinfo=UTC)
    chain = GateChain(
        [
            SchemaGate({"email", "sms"}),
            ConsentGate(),
            QuietHoursGate(time(21), time(8)),
            SuppressionGate(),
        ]
    )
    c = ctx(database_url, now)
    c.services["suppressions"].add("c3", "complained")
    result = chain.run(batch(consent_sms=[None, False, None]), c)
    assert list(result.outcome) == [DEFER, FAIL, FAIL]
    assert list(result.gate) == ["quiet_hours", "consent", "suppression"]
    assert [v["gate"] for v in result.verdicts[0]] == [
        "schema",
        "consent",
        "quiet_hours",
        "suppression",
    ]
    assert [v["gate"] for v in result.verdicts[1]] == ["schema", "consent"]
    assert np.all(result.defer_until[1:] == np.iinfo(np.int64).min)


def test_an_unknown_time_zone_fails_its_row_at_the_schema_gate_not_the_batch(
    tmp_path: Path,
) -> None:
    chain = GateChain(
        [
            SchemaGate({"email", "sms"}),
            QuietHoursGate(time(21), time(8)),
            FrequencyCapGate(per_day=1),
        ]
    )
    result = chain.run(
        batch(time_zone=["Mars/Olympus_Mons", "America/New_York", ""]), ctx(tmp_path)
    )
    assert list(result.outcome) == [FAIL, PASS, FAIL]
    assert list(result.reason) == ["invalid_time_zone", "ok", "invalid_time_zone"]
    assert "Mars/Olympus_Mons" in result.verdicts[0][0]["detail"]


def test_the_cap_counts_the_day_a_deferred_message_goes_out(database_url: str) -> None:
    """23:30 in Berlin: the send is deferred to 08:00 tomorrow, so a message already sent
    today does not count against it; one already booked for tomorrow does."""
    now = datetime(2026, 7, 1, 21, 30, tzinfo=UTC)
    c = ctx(database_url, now)
    ledger: Ledger = c.services["ledger"]
    today, tomorrow = datetime(2026, 7, 1).date(), datetime(2026, 7, 2).date()

    def booked(key: str, customer: str, day: Any) -> Reservation:
        return Reservation(key, "r0", "camp", customer, "email", "smtp", None, None, None, day, {})

    ledger.reserve([booked("k1", "c1", today), booked("k3", "c3", tomorrow)], cap=5)
    chain = GateChain([QuietHoursGate(time(21), time(8)), FrequencyCapGate(per_day=1)])
    people = batch(
        customer_id=["c1", "c3", "c2"],
        channel=["email", "email", "email"],
        time_zone=["Europe/Berlin", "Europe/Berlin", "America/New_York"],
    )
    result = chain.run(people, c)
    # c1: today's send does not block tomorrow's; c3: tomorrow is full; c2: New York, now.
    assert list(result.outcome) == [DEFER, FAIL, PASS]
    assert list(result.reason) == ["quiet_hours", "frequency_cap", "ok"]
