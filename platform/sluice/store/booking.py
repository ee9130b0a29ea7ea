"""Booking a batch of gated messages: one transaction, whatever happens around it.

Everything the pipeline decides about a batch is written together or not at all: the
ledger reservations (with the frequency cap counted in the same statements), the audit
record of every candidate and the drafts they point to, and the review items. A crash at
any point leaves either the whole booking or none of it, so a retried batch is
recognised from what was booked (its audit records) and never gated into another
outcome, and no reserved message is ever without its audit record or its review item.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from sluice.contracts.clock import SYSTEM_CLOCK, Clock
from sluice.store.audit import record_in
from sluice.store.reservations import Reservation, ReserveOutcome, reserve_in
from sluice.store.reviews import enqueue_in


@dataclass
class Booking:
    """What one batch books."""

    reservations: Sequence[Reservation] = ()
    audit_rows: list[dict[str, Any]] = field(default_factory=list)
    """One per candidate; a reserved message's row carries its ``idempotency_key``."""
    drafts: dict[str, str] = field(default_factory=dict)
    review_items: list[dict[str, Any]] = field(default_factory=list)


def book(
    engine: Engine,
    booking: Booking,
    cap: int | None,
    on_capped: Callable[[dict[str, Any]], None],
    clock: Clock = SYSTEM_CLOCK,
) -> ReserveOutcome:
    """Write ``booking`` in one transaction. A reservation the cap refuses has its audit
    row rewritten by ``on_capped`` (in place) before the row is written."""
    now = clock.now()
    with engine.begin() as conn:
        outcome = reserve_in(conn, booking.reservations, cap, now)
        capped = set(outcome.capped)
        if capped:
            for row in booking.audit_rows:
                if row.get("idempotency_key") in capped:
                    on_capped(row)
        record_in(conn, booking.audit_rows, booking.drafts, now)
        enqueue_in(conn, booking.review_items, now)
    return outcome
