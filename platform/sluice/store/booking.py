"""Booking a batch of gated messages: one transaction, whatever happens around it.

Everything the pipeline decides about a batch is written together or not at all: the
ledger reservations (with the frequency cap counted in the same statements), the audit
record of every candidate and the drafts they point to, and the review items. A crash at
any point leaves either the whole booking or none of it, so a retried batch is
recognised from what was booked (its audit records) and never gated into another
outcome, and no reserved message is ever without its audit record or its review item.
An approved review item is booked the same way (:func:`book_release`): its reservation,
its settled audit record and the item's result together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from sluice.contracts.clock import SYSTEM_CLOCK, Clock
from sluice.store.audit import Settlement, record_in, settle_in
from sluice.store.reservations import Reservation, ReserveOutcome, reserve_in
from sluice.store.reviews import enqueue_in, settle_item_in


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


@dataclass
class Release:
    """A reviewed message after a person's approval and the other gates' second look.

    ``reservation`` is None when a gate rejected it (or asked for review again) on that
    second look; ``outcome``, ``gate`` and ``reason`` say so."""

    review_id: str
    run_id: str
    customer_id: str
    verdicts: list[dict[str, Any]]
    reservation: Reservation | None = None
    outcome: str = "reserved"
    gate: str | None = None
    reason: str | None = None


def book_release(
    engine: Engine, release: Release, cap: int | None, clock: Clock = SYSTEM_CLOCK
) -> str:
    """Book an approved message in one transaction: its reservation (the cap counted),
    its audit record settled, and the review item's result. Returns that result:
    ``reserved``, ``deferred`` or ``<outcome>:<gate>:<reason>``."""
    now = clock.now()
    outcome, gate, reason, key = release.outcome, release.gate, release.reason, None
    verdicts = list(release.verdicts)
    with engine.begin() as conn:
        if release.reservation is not None:
            booked = reserve_in(conn, [release.reservation], cap, now)
            if booked.capped:
                outcome, gate, reason = "rejected", "frequency_cap", "frequency_cap"
                verdicts.append(
                    {
                        "gate": gate,
                        "outcome": "fail",
                        "reason": reason,
                        "detail": "cap reached when reserving",
                    }
                )
            else:
                key = release.reservation.idempotency_key
                outcome = "deferred" if booked.deferred else "reserved"
        settle_in(
            conn,
            Settlement(release.run_id, release.customer_id, outcome, gate, reason, verdicts, key),
        )
        result = outcome if key is not None else f"{outcome}:{gate}:{reason}"
        settle_item_in(conn, release.review_id, result)
    return result
