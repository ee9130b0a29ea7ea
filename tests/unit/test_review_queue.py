"""The review queue's decisions: single winner, leases on approvals, windows that hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from sluice.contracts.clock import Clock
from sluice.errors import ConflictError
from sluice.store import connect
from sluice.store.reviews import APPROVAL_LEASE, APPROVED, REJECTED, ReviewQueue, encode_row

T0 = datetime(2031, 5, 1, 12, tzinfo=UTC)


def queue(database_url: str, at: datetime) -> ReviewQueue:
    return ReviewQueue(connect(database_url), Clock.at(at))


def item(review_id: str, expires_at: datetime) -> dict[str, object]:
    return {
        "review_id": review_id,
        "run_id": "run-r",
        "campaign_id": "camp",
        "customer_id": f"cust-{review_id}",
        "channel": "email",
        "offer_id": "spring-boots-20",
        "gate": "confidence",
        "reason": "ambiguous_score",
        "detail": "score in band",
        "message": encode_row(pa.table({"customer_id": [f"cust-{review_id}"]})),
        "expires_at": expires_at,
    }


def test_an_approval_is_single_winner_and_an_interrupted_one_can_be_finished(
    database_url: str,
) -> None:
    queue(database_url, T0).enqueue([item("r1", T0 + timedelta(hours=24))])
    first = queue(database_url, T0).decide("r1", APPROVED, "alice", None, None)
    assert first.status == APPROVED and first.decided_by == "alice"
    # While alice's approval is being carried out, nobody else can approve or reject.
    with pytest.raises(ConflictError, match="being approved by alice right now"):
        queue(database_url, T0 + timedelta(minutes=1)).decide("r1", APPROVED, "bob", None, None)
    with pytest.raises(ConflictError):
        queue(database_url, T0 + timedelta(minutes=1)).decide("r1", REJECTED, "bob", "no", "x")
    # Her process died: once the lease is over, an approval finishes it ...
    late = T0 + APPROVAL_LEASE + timedelta(seconds=1)
    again = queue(database_url, late).decide("r1", APPROVED, "bob", None, None)
    assert again.decided_by == "bob"
    queue(database_url, late).settle("r1", "sent")
    # ... and a finished approval is final.
    with pytest.raises(ConflictError, match="already approved by bob"):
        queue(database_url, late + timedelta(hours=1)).decide("r1", APPROVED, "carol", None, None)


def test_an_item_past_its_window_is_refused_whatever_its_history(database_url: str) -> None:
    ends = T0 + timedelta(hours=2)
    queue(database_url, T0).enqueue([item("r2", ends), item("r3", ends)])
    # r2 was approved, and the approval was interrupted before it had a result.
    queue(database_url, T0 + timedelta(minutes=30)).decide("r2", APPROVED, "alice", None, None)
    after = queue(database_url, ends + timedelta(minutes=1))
    for review_id in ("r2", "r3"):
        with pytest.raises(ConflictError, match="already expired"):
            after.decide(review_id, APPROVED, "bob", None, None)
    assert after.get("r3").status == "expired"
    with pytest.raises(ConflictError, match="already expired"):
        after.decide("r3", REJECTED, "bob", "too late", "rejected")


def test_a_queued_approval_waits_for_one_worker_that_holds_it_while_it_delivers(
    database_url: str,
) -> None:
    q = queue(database_url, T0)
    q.enqueue([item("q1", T0 + timedelta(hours=1)), item("q2", T0 + timedelta(hours=1))])
    queued = q.decide("q1", APPROVED, "erin", None, None, lease=None)
    assert queued.status == APPROVED and queued.result is None and queued.lease_until is None
    # A queued approval takes only a pending item: it never takes over another's.
    with pytest.raises(ConflictError, match="being approved by erin"):
        q.decide("q1", APPROVED, "frank", None, None, lease=None)
    assert [i.review_id for i in q.approved_waiting(10)] == ["q1"]  # q2 is still pending

    # Two workers: one wins the item and holds it while its delivery may take.
    a, b = queue(database_url, T0), queue(database_url, T0)
    [waiting] = a.approved_waiting(10)
    assert a.claim_approved(waiting, timedelta(minutes=2)) is True
    assert b.claim_approved(waiting, timedelta(minutes=2)) is False
    assert b.approved_waiting(10) == ()
    # The winner died: after its lease, another worker takes the item.
    later = queue(database_url, T0 + timedelta(minutes=3))
    [again] = later.approved_waiting(10)
    assert later.claim_approved(again, timedelta(minutes=2)) is True
    later.settle("q1", "sent")
    assert later.approved_waiting(10) == ()
    # An approval queued inside the window is delivered even when the worker comes later.
    q.decide("q2", APPROVED, "erin", None, None, lease=None)
    past = queue(database_url, T0 + timedelta(hours=2))
    [late] = past.approved_waiting(10)
    assert late.review_id == "q2" and past.claim_approved(late, timedelta(minutes=2))
