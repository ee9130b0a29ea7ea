"""Messages a gate handed to a person: queued with their candidate row, released to the
ledger and delivery once approved.

A review item carries the message's candidate row (one-row Arrow IPC), so that an
approved message is gated and delivered exactly as the run would have sent it; every
gate other than the one that asked for review runs again, since consent, suppressions
and the frequency cap may have changed while it waited.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from sluice.contracts.verdicts import GateOutcome
from sluice.coordinator.keys import idempotency_key
from sluice.errors import ConflictError
from sluice.gates.base import (
    FAIL,
    NO_TIME,
    REVIEW,
    ChainResult,
    GateChain,
    GateContext,
    MessageBatch,
)
from sluice.store.booking import Release, book_release
from sluice.store.reviews import encode_row

if TYPE_CHECKING:
    from sluice.coordinator.core import CoordinatorCore


def review_item(
    core: CoordinatorCore,
    table: pa.Table,
    i: int,
    r: dict[str, Any],
    key: str,
    result: ChainResult,
    k: int,
    now: datetime,
) -> dict[str, Any]:
    verdict = next(
        v for v in reversed(result.verdicts[k]) if v["outcome"] == GateOutcome.REVIEW.value
    )
    return {
        "review_id": key,
        "run_id": core.run_id,
        "campaign_id": core.spec.campaign_id,
        "customer_id": r["customer_id"],
        "channel": r["channel"],
        "offer_id": r.get("offer_id"),
        "gate": verdict["gate"],
        "reason": verdict["reason"],
        "detail": verdict["detail"],
        "message": encode_row(table.slice(i, 1)),
        "expires_at": review_expiry(core, r, now),
    }


def review_expiry(core: CoordinatorCore, r: dict[str, Any], now: datetime) -> datetime:
    """End of the review window: ``review_hours`` after gating, and never after the
    last day of the offer."""
    until = now + timedelta(hours=core.spec.review_hours)
    offer = core.catalog.get(r["offer_id"]) if r.get("offer_id") else None
    if offer is not None:
        last = datetime.combine(offer.valid_until + timedelta(days=1), time(), UTC)
        until = min(until, last)
    return until


def release_reviewed(
    core: CoordinatorCore, review_id: str, table: pa.Table, gate: str, by: str
) -> str:
    """A person approved the review ``gate`` asked for: the message goes through every
    other gate again (consent, suppression and the cap may have changed meanwhile), is
    booked in one transaction (reservation, audit record, the item's result) like a
    campaign batch, and delivered by the run's deliverer. Returns what became of it."""
    if core.dry_run:
        raise ConflictError("review_id: a dry run sends nothing; nothing to approve")
    now = core.clock.now()
    row = table.to_pylist()[0]
    key = idempotency_key(core.run_id, row["customer_id"], row["channel"])
    chain = GateChain([g for g in core.chain.gates if g.name != gate])
    ctx = GateContext(
        core.run_id, core.spec.campaign_id, core.spec.brand, now, False, core.services
    )
    result = chain.run(MessageBatch(table), ctx)
    approval = {"gate": gate, "outcome": "pass", "reason": "approved", "detail": f"by {by}"}
    release = Release(review_id, core.run_id, row["customer_id"], [approval, *result.verdicts[0]])
    code = int(result.outcome[0])
    if code in (FAIL, REVIEW):
        release.outcome = "rejected" if code == FAIL else "review"
        release.gate, release.reason = str(result.gate[0]), str(result.reason[0])
    else:
        until = (
            None
            if result.defer_until[0] == NO_TIME
            else datetime.fromtimestamp(result.defer_until[0] / 1e6, UTC)
        )
        release.reservation = core.reservation(row, key, until, now)
    booked = book_release(core.engine, release, core.cap, core.clock)
    if booked != "reserved":
        return booked
    delivered = core.deliverer.deliver(core.ledger.pending(core.run_id, [key]))
    return "sent" if delivered.get("sent") else booked
