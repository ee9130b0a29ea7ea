"""The delivery ledger, suppressions and runs, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest

from sluice.contracts.clock import Clock
from sluice.errors import ConflictError
from sluice.store import connect
from sluice.store.ledger import Ledger, Reservation
from sluice.store.runs import Runs
from sluice.store.suppressions import Suppressions

DAY = date(2026, 7, 1)
LEASE = timedelta(minutes=2)


def res(
    key: str,
    customer: str,
    run: str = "run-a",
    day: date = DAY,
    send_after: datetime | None = None,
    channel: str = "email",
) -> Reservation:
    return Reservation(
        key,
        run,
        "camp",
        customer,
        channel,
        "smtp",
        f"dec_{key}",
        "offer-1",
        "main",
        day,
        {"address": f"{customer}@example.com"},
        send_after,
    )


def test_reservations_are_idempotent_and_unique_per_run_customer_channel(database_url: str) -> None:
    ledger = Ledger(connect(database_url))
    first = ledger.reserve([res("k1", "c1"), res("k2", "c2")], cap=None)
    assert sorted(first.reserved) == ["k1", "k2"] and not first.existing
    again = ledger.reserve([res("k1", "c1"), res("k3", "c3")], cap=None)
    assert again.existing == {"k1": "reserved"} and again.reserved == ["k3"]
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError):  # same run, customer and channel under another key
        ledger.reserve([res("other", "c1")], cap=None)
    assert ledger.counts("run-a") == {"reserved": 3}


def test_the_cap_is_counted_in_the_reserving_transaction(database_url: str) -> None:
    ledger = Ledger(connect(database_url))
    out = ledger.reserve([res("a1", "c1", "run-a"), res("a2", "c2", "run-a")], cap=1)
    assert sorted(out.reserved) == ["a1", "a2"]
    out = ledger.reserve(
        [res("b1", "c1", "run-b"), res("b2", "c2", "run-b", day=DAY + timedelta(days=1))], cap=1
    )
    assert out.capped == ["b1"] and out.reserved == ["b2"]
    assert ledger.contacts("c1") == {DAY: 1}


def test_two_campaigns_at_once_never_exceed_the_cap(database_url: str) -> None:
    engine = connect(database_url)
    customers = [f"c{i}" for i in range(40)]
    errors: list[BaseException] = []

    def campaign(run: str) -> None:
        try:
            ledger = Ledger(engine)
            for i in range(0, len(customers), 5):
                ledger.reserve([res(f"{run}-{c}", c, run) for c in customers[i : i + 5]], cap=1)
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=campaign, args=(f"run-{n}",)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    ledger = Ledger(engine)
    assert sum(sum(ledger.counts(f"run-{n}").values()) for n in range(3)) == len(customers)
    assert all(ledger.contacts(c) == {DAY: 1} for c in customers)


def test_claims_outcomes_and_the_cap_after_a_failure(database_url: str) -> None:
    ledger = Ledger(connect(database_url))
    ledger.reserve([res("k1", "c1"), res("k2", "c2"), res("k3", "c3")], cap=1)
    assert ledger.claim("k1", "w1", LEASE) and not ledger.claim("k1", "w2", LEASE)
    [row] = ledger.pending("run-a", ["k1"])
    assert row.attempts == 1 and row.attempt_started_at is not None  # ambiguous if we crashed now
    assert row.claim_owner == "w1" and row.lease_until is not None
    assert not ledger.release("k1", "not mine", owner="w2")  # only the holder settles
    assert ledger.release("k1", "connection refused", owner="w1")
    assert ledger.pending("run-a", ["k1"])[0].attempt_started_at is None
    assert ledger.claim("k1", "w1", LEASE)
    assert ledger.mark_sent("k1", "<k1@shop>", owner="w1")
    for key in ("k2", "k3"):
        assert ledger.claim(key, "w1", LEASE)
    ledger.mark_failed("k2", "refused: 550", owner="w1")  # certainly not delivered: frees the cap
    ledger.mark_failed("k3", "ambiguous", delivered_maybe=True, owner="w1")  # maybe: still counts
    assert ledger.counts("run-a") == {"sent": 1, "failed": 2}
    assert ledger.contacts("c2") == {DAY: 0} and ledger.contacts("c3") == {DAY: 1}
    assert not ledger.claim("k1", "w1", LEASE)


def test_a_live_lease_is_never_touched_and_an_expired_one_is_taken_over_once(
    database_url: str,
) -> None:
    t0 = datetime(2026, 7, 1, 12, tzinfo=UTC)
    engine = connect(database_url)
    ledger = Ledger(engine, Clock.at(t0))
    ledger.reserve([res("k1", "c1")], cap=None)
    assert ledger.claim("k1", "w1", LEASE)
    # Another worker finds the stamped row: the lease is live, so it is someone's send.
    assert not ledger.take_over("k1", "w2", LEASE)
    assert not ledger.claim("k1", "w2", LEASE)
    # Past the lease, exactly one worker takes it over to reconcile; the old holder can
    # no longer settle it.
    later = Ledger(engine, Clock.at(t0 + LEASE + timedelta(seconds=1)))
    assert later.take_over("k1", "w2", LEASE)
    assert not later.take_over("k1", "w3", LEASE)
    assert not later.mark_sent("k1", "late", owner="w1")
    assert later.mark_sent("k1", "reconciled:k1", owner="w2")
    assert later.counts("run-a") == {"sent": 1}


def test_deferred_rows_become_due(database_url: str) -> None:
    ledger = Ledger(connect(database_url))
    now = datetime(2026, 7, 1, 22, tzinfo=UTC)
    later = now + timedelta(hours=10)
    out = ledger.reserve([res("k1", "c1", send_after=later), res("k2", "c2")], cap=1, now=now)
    assert out.deferred == ["k1"] and out.reserved == ["k2"]
    assert ledger.promote_due("run-a", now) == 0
    assert ledger.promote_due("run-a", later + timedelta(seconds=1)) == 1
    assert {r.idempotency_key for r in ledger.pending("run-a")} == {"k1", "k2"}


def test_suppressions_by_brand_and_channel(database_url: str) -> None:
    store = Suppressions(connect(database_url))
    assert store.add("c1", "unsubscribed", channel="email", brand="outdoors")
    assert not store.add("c1", "unsubscribed", channel="email", brand="outdoors")
    store.add("c2", "complained")  # every channel, every brand
    store.add("c3", "bounced", brand="other-brand")
    found = store.lookup(["c1", "c2", "c3", "c4"], brand="outdoors")
    assert {k: [(s.channel, s.reason) for s in v] for k, v in found.items()} == {
        "c1": [("email", "unsubscribed")],
        "c2": [("*", "complained")],
    }
    assert store.remove("c1", "unsubscribed", channel="email", brand="outdoors") == 1
    with pytest.raises(ValueError, match="reason"):
        store.add("c5", "annoyed")


def test_a_run_id_is_bound_to_its_spec_and_kind(database_url: str) -> None:
    runs = Runs(connect(database_url))
    first = runs.start("r1", "camp", {"a": 1}, dry_run=False, context={"model": "m/3"})
    assert first.status == "running" and first.context == {"model": "m/3"}
    runs.finish("r1", {"sent": 3})
    again = runs.start("r1", "camp", {"a": 1}, dry_run=False)
    assert (
        again.status == "running"
        and again.context == {"model": "m/3"}
        and again.funnel == {"sent": 3}
    )
    with pytest.raises(ConflictError, match="different campaign spec"):
        runs.start("r1", "camp", {"a": 2}, dry_run=False)
    with pytest.raises(ConflictError, match="was a real run"):
        runs.start("r1", "camp", {"a": 1}, dry_run=True)


def test_a_batch_is_booked_in_one_transaction_or_not_at_all(database_url: str) -> None:
    """Reservation, cap count, audit record and review item commit together: a failure
    while writing the audit leaves no reservation behind, so the retried batch is booked
    as it was gated (not rejected by its own earlier reservation's cap count)."""
    from sqlalchemy.exc import IntegrityError

    from sluice.store.audit import AuditStore
    from sluice.store.booking import Booking, book
    from sluice.store.reviews import ReviewQueue

    engine = connect(database_url)
    ledger = Ledger(engine)

    def audit_row(decision_id: str | None) -> dict[str, object]:
        return {
            "run_id": "run-a",
            "customer_id": "c1",
            "decision_id": decision_id,
            "campaign_id": "camp",
            "arm": "main",
            "outcome": "reserved",
            "idempotency_key": "k1",
        }

    review = {
        "review_id": "k2",
        "run_id": "run-a",
        "campaign_id": "camp",
        "customer_id": "c2",
        "channel": "email",
        "gate": "confidence",
        "reason": "ambiguous_score",
        "message": "",
        "expires_at": datetime(2026, 7, 4, tzinfo=UTC),
    }
    capped: list[object] = []
    with pytest.raises(IntegrityError):  # the audit row is broken: nothing may stay
        book(engine, Booking([res("k1", "c1")], [audit_row(None)], {}, [review]), 1, capped.append)
    assert ledger.states(["k1"]) == {} and ledger.contacts("c1") == {}
    assert ReviewQueue(engine).list("run-a") == []
    out = book(
        engine, Booking([res("k1", "c1")], [audit_row("dec_1")], {}, [review]), 1, capped.append
    )
    assert out.reserved == ["k1"] and not capped
    record = AuditStore(engine).record_of("run-a", "c1")
    assert record is not None and record["outcome"] == "reserved"
    assert [i.review_id for i in ReviewQueue(engine).list("run-a")] == ["k2"]


def test_an_uncapped_campaign_still_counts_on_the_recipients_day(database_url: str) -> None:
    """A campaign without a cap is not invisible to the ones with one."""
    ledger = Ledger(connect(database_url))
    assert ledger.reserve([res("u1", "c1", "run-u")], cap=None).reserved == ["u1"]
    assert ledger.contacts("c1") == {DAY: 1}
    assert ledger.reserve([res("k1", "c1", "run-k")], cap=1).capped == ["k1"]


def test_an_approved_review_is_booked_in_one_transaction(database_url: str) -> None:
    """An approval's reservation, its settled audit record and the item's result commit
    together; the cap counted in the same transaction can still refuse it."""
    from sluice.store.audit import AuditStore
    from sluice.store.booking import Booking, Release, book, book_release
    from sluice.store.reviews import APPROVED, ReviewQueue

    engine = connect(database_url)
    ledger, queue = Ledger(engine), ReviewQueue(engine)
    items = [
        {
            "review_id": f"k{n}",
            "run_id": "run-a",
            "campaign_id": "camp",
            "customer_id": f"c{n}",
            "channel": "email",
            "gate": "confidence",
            "reason": "ambiguous_score",
            "message": "",
            "expires_at": datetime(2099, 1, 1, tzinfo=UTC),
        }
        for n in (1, 2)
    ]
    rows = [
        {
            "run_id": "run-a",
            "customer_id": f"c{n}",
            "decision_id": f"dec_{n}",
            "campaign_id": "camp",
            "arm": "main",
            "outcome": "review",
        }
        for n in (1, 2)
    ]
    book(engine, Booking([res("k0", "c2")], rows, {}, items), 1, lambda _: None)
    for n in (1, 2):
        queue.decide(f"k{n}", APPROVED, "alice", None, None)
    approved = [{"gate": "confidence", "outcome": "pass", "reason": "approved", "detail": "alice"}]

    broken = Release("k1", "run-a", "c1", [{"detail": object()}], res("k1", "c1"))
    with pytest.raises(TypeError):  # the audit trail cannot be written: nothing stays
        book_release(engine, broken, 1)
    assert ledger.states(["k1"]) == {} and ledger.contacts("c1") == {}
    assert queue.get("k1").result is None

    assert book_release(engine, Release("k1", "run-a", "c1", approved, res("k1", "c1")), 1) == (
        "reserved"
    )
    assert ledger.states(["k1"]) == {"k1": "reserved"} and queue.get("k1").result == "reserved"
    record = AuditStore(engine).record_of("run-a", "c1")
    assert record is not None and (record["outcome"], record["idempotency_key"]) == (
        "reserved",
        "k1",
    )

    capped = book_release(engine, Release("k2", "run-a", "c2", approved, res("k2", "c2")), 1)
    assert capped == "rejected:frequency_cap:frequency_cap" and ledger.states(["k2"]) == {}
    assert queue.get("k2").result == capped
    record = AuditStore(engine).record_of("run-a", "c2")
    assert record is not None and record["outcome"] == "rejected" and not record["idempotency_key"]
