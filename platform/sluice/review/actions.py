"""Review decisions, as the CLI and the admin API take them.

Approving hands the message back to the coordinator core of its run: every gate other
than the one that asked for review runs again (consent, suppressions and the frequency
cap may have changed while it waited), then the ledger reserves it and it is delivered
like any other message of the run, exactly once. Rejecting records who and why. Both
close expired items first: a message whose review window is over is never sent.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from sluice.contracts.api import VISIBLE
from sluice.contracts.clock import SYSTEM_CLOCK, Clock
from sluice.store.audit import AuditStore, Settlement
from sluice.store.db import connect
from sluice.store.reviews import APPROVED, REJECTED, ReviewItem, ReviewQueue
from sluice.store.runs import Runs


def pending(
    database_url: str,
    run_id: str | None = None,
    status: str | None = "pending",
    limit: int = 100,
    clock: Clock = SYSTEM_CLOCK,
) -> list[ReviewItem]:
    queue = ReviewQueue(connect(database_url), clock)
    queue.expire()
    return queue.list(run_id, status, limit)


def show(review_id: str, database_url: str, clock: Clock = SYSTEM_CLOCK) -> ReviewItem:
    queue = ReviewQueue(connect(database_url), clock)
    queue.expire()
    return queue.get(review_id)


def approve(
    review_id: str, by: str, database_url: str, home: Path, clock: Clock = SYSTEM_CLOCK
) -> ReviewItem:
    """``home``: where this process's unsubscribe key lives (see
    :func:`sluice.channels.unsubscribe.secret`); the key is read here, where it signs."""
    from sluice.channels.unsubscribe import secret
    from sluice.contracts.campaign import CampaignSpec
    from sluice.coordinator.core import CoordinatorCore
    from sluice.coordinator.reviewed import release_reviewed
    from sluice.coordinator.transports import lease_for
    from sluice.errors import NotFoundError

    engine = connect(database_url)
    queue = ReviewQueue(engine, clock)
    queue.expire()
    run = Runs(engine).get(queue.get(review_id).run_id)
    if run is None:
        raise NotFoundError(f"review_id: the run of {review_id} is not recorded", field="review_id")
    spec = CampaignSpec.model_validate(run.spec)
    # The approval holds the item as long as one delivery attempt may take.
    item = queue.decide(review_id, APPROVED, by, None, None, lease=lease_for(spec))
    decision_date = date.fromisoformat(run.context["decision_date"])
    core = CoordinatorCore(
        item.run_id, spec, False, database_url, secret(home), decision_date, clock=clock
    )
    try:
        result = release_reviewed(core, review_id, item.table(), item.gate, by)
    finally:
        core.close()
    if result == "sent":  # booked as reserved; delivered since
        queue.settle(review_id, result)
    return queue.get(review_id)


def reject(
    review_id: str,
    by: str,
    reason: str,
    database_url: str,
    clock: Clock = SYSTEM_CLOCK,
) -> ReviewItem:
    from sluice.errors import InputError

    if not re.search(VISIBLE, reason):
        raise InputError("--reason: say why the message is rejected", field="reason")
    engine = connect(database_url)
    queue = ReviewQueue(engine, clock)
    queue.expire()
    item = queue.decide(review_id, REJECTED, by, reason, "rejected")
    verdict = {
        "gate": "review",
        "outcome": "fail",
        "reason": "reviewer_rejected",
        "detail": f"by {by}: {reason}",
    }
    AuditStore(engine, clock).settle_review(
        Settlement(
            item.run_id, item.customer_id, "rejected", "review", "reviewer_rejected", [verdict]
        )
    )
    return item
