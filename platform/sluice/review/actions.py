"""Review decisions, as the CLI and the admin API take them.

Approving hands the message back to the coordinator core of its run: every gate other
than the one that asked for review runs again (consent, suppressions and the frequency
cap may have changed while it waited), then the ledger reserves it and it is delivered
like any other message of the run, exactly once. The CLI approves and delivers in its
own process (:func:`approve`); the admin API only records the approval
(:func:`approve_later`) and the orchestrator delivers it (:func:`deliver_approved`), so
no HTTP request builds a transport. Rejecting records who and why. Both close expired
items first: a message whose review window is over is never sent.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sluice.contracts.api import VISIBLE
from sluice.contracts.campaign import CampaignSpec
from sluice.contracts.clock import SYSTEM_CLOCK, Clock
from sluice.errors import SluiceError
from sluice.store.audit import AuditStore, Settlement
from sluice.store.db import connect
from sluice.store.reviews import APPROVED, REJECTED, ReviewItem, ReviewQueue
from sluice.store.runs import Runs

if TYPE_CHECKING:
    from sluice.channels.unsubscribe import Keyring
    from sluice.store.db import Engine
    from sluice.store.runs import RunRecord


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
    """Approve and deliver now, in this process (the CLI). ``home``: where this
    process's unsubscribe key lives (see :func:`sluice.channels.unsubscribe.secret`);
    the key is read here, where it signs."""
    from sluice.channels.unsubscribe import secret
    from sluice.coordinator.transports import lease_for

    engine = connect(database_url)
    queue = ReviewQueue(engine, clock)
    queue.expire()
    spec, run = _run_of(engine, queue.get(review_id))
    # The approval holds the item as long as one delivery attempt may take.
    item = queue.decide(review_id, APPROVED, by, None, None, lease=lease_for(spec))
    _release(database_url, secret(home), clock, queue, item, spec, run.context)
    return queue.get(review_id)


def approve_later(
    review_id: str, by: str, database_url: str, clock: Clock = SYSTEM_CLOCK
) -> ReviewItem:
    """Approve and leave the delivery to a worker (the orchestrator, see
    :func:`deliver_approved`): the admin API answers at once and builds no transports.
    Approving an item whose approval is already queued changes nothing."""
    engine = connect(database_url)
    queue = ReviewQueue(engine, clock)
    queue.expire()
    item = queue.get(review_id)
    if item.status == APPROVED and item.result is None:
        return item
    _run_of(engine, item)  # refuse items whose run is unknown before taking them
    return queue.decide(review_id, APPROVED, by, None, None, lease=None)


def deliver_approved(
    database_url: str, keys: Keyring, clock: Clock = SYSTEM_CLOCK, limit: int = 100
) -> dict[str, int]:
    """Deliver approved items nobody holds (queued by the admin API, or whose approval was
    interrupted), each under a lease so that two workers never take the same one.
    Returns how many ended how (``sent``, ``reserved``, ``rejected``, ``failed``...)."""
    from sluice.coordinator.transports import lease_for

    engine = connect(database_url)
    queue = ReviewQueue(engine, clock)
    counts: dict[str, int] = {}
    for item in queue.approved_waiting(limit):
        try:
            spec, run = _run_of(engine, item)
            if not queue.claim_approved(item, lease_for(spec)):
                continue
            result = _release(database_url, keys, clock, queue, item, spec, run.context)
        except SluiceError as exc:
            queue.settle(item.review_id, f"failed: {exc.message}"[:200])
            result = "failed"
        counts[result] = counts.get(result, 0) + 1
    return counts


def _run_of(engine: Engine, item: ReviewItem) -> tuple[CampaignSpec, RunRecord]:
    from sluice.errors import NotFoundError

    run = Runs(engine).get(item.run_id)
    if run is None:
        raise NotFoundError(
            f"review_id: the run of {item.review_id} is not recorded", field="review_id"
        )
    return CampaignSpec.model_validate(run.spec), run


def _release(
    database_url: str,
    keys: Keyring,
    clock: Clock,
    queue: ReviewQueue,
    item: ReviewItem,
    spec: CampaignSpec,
    context: dict[str, Any],
) -> str:
    from sluice.coordinator.core import CoordinatorCore
    from sluice.coordinator.reviewed import release_reviewed

    decision_date = date.fromisoformat(context["decision_date"])
    core = CoordinatorCore(item.run_id, spec, False, database_url, keys, decision_date, clock=clock)
    try:
        by = item.decided_by or "unknown"
        result = release_reviewed(core, item.review_id, item.table(), item.gate, by)
    finally:
        core.close()
    if result == "sent":  # booked as reserved; delivered since
        queue.settle(item.review_id, result)
    return result


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
