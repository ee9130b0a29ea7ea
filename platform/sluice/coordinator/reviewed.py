"""A message a person approved: released to the ledger and delivery.

The review item carries the message's candidate row (see :mod:`sluice.coordinator.queued`),
so an approved message is gated and delivered exactly as the run would have sent it; every
gate other than the one that asked for review runs again, since consent, suppressions and
the frequency cap may have changed while it waited.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pyarrow as pa

from sluice.coordinator.keys import idempotency_key
from sluice.errors import ConflictError
from sluice.gates.base import (
    FAIL,
    NO_TIME,
    REVIEW,
    GateChain,
    GateContext,
    MessageBatch,
)
from sluice.store.booking import Release, book_release

if TYPE_CHECKING:
    from sluice.coordinator.core import CoordinatorCore


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
