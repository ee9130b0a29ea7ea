"""Reservations: what a booked message is, and the statements that book it.

A reservation is one row of the delivery ledger per (run, customer, channel) under an
idempotency key, plus one count on the recipient's day in ``contact_counts``: both are
written by :func:`reserve_in` inside the caller's transaction (a batch's booking, see
:mod:`sluice.store.booking`), with a conditional upsert (``n = n + 1 WHERE n < cap``), so
two campaigns running at once can never push a recipient past a cap, on SQLite or
PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, bindparam, select, update
from sqlalchemy.engine import Connection

from sluice.contracts.delivery import DeliveryState
from sluice.store.db import utc
from sluice.store.dialect import upsert_insert
from sluice.store.schema import contact_counts, deliveries

RESERVED, SENT, FAILED, DEFERRED, SUPPRESSED, EXPIRED, WITHDRAWN = (s.value for s in DeliveryState)


@dataclass(frozen=True)
class Reservation:
    idempotency_key: str
    run_id: str
    campaign_id: str
    customer_id: str
    channel: str
    transport: str
    decision_id: str | None
    offer_id: str | None
    arm: str | None
    local_day: date
    """The recipient-local day the send counts against."""
    payload: dict[str, Any]
    """Everything needed to send (address, copy, headers): a resumed run needs nothing else."""
    send_after: datetime | None = None
    """Set for deferred messages (quiet hours)."""
    time_zone: str = "UTC"
    """The recipient's IANA zone: quiet hours and the cap's day are re-checked in it."""


@dataclass
class ReserveOutcome:
    reserved: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    capped: list[str] = field(default_factory=list)
    existing: dict[str, str] = field(default_factory=dict)
    """Keys already in the ledger (a rerun), with their state."""


@dataclass(frozen=True)
class DeliveryRow:
    idempotency_key: str
    run_id: str
    customer_id: str
    channel: str
    transport: str
    state: str
    payload: dict[str, Any]
    attempts: int
    attempt_started_at: datetime | None
    send_after: datetime | None
    provider_message_id: str | None
    claim_owner: str | None = None
    lease_until: datetime | None = None
    offer_id: str | None = None
    local_day: date | None = None
    time_zone: str = "UTC"


def booked_row(item: Reservation) -> DeliveryRow:
    """The ledger row :func:`reserve_in` just wrote for ``item`` as reserved, without
    reading it back: no attempt yet, nothing sent."""
    return DeliveryRow(
        idempotency_key=item.idempotency_key,
        run_id=item.run_id,
        customer_id=item.customer_id,
        channel=item.channel,
        transport=item.transport,
        state=RESERVED,
        payload=item.payload,
        attempts=0,
        attempt_started_at=None,
        send_after=None,
        provider_message_id=None,
        offer_id=item.offer_id,
        local_day=item.local_day,
        time_zone=item.time_zone,
    )


def uncount(conn: Connection, customer_id: str, local_day: date) -> None:
    """A send that will not happen no longer counts against the recipient's daily cap."""
    conn.execute(
        update(contact_counts)
        .where(
            and_(
                contact_counts.c.customer_id == customer_id,
                contact_counts.c.local_day == local_day,
                contact_counts.c.n > 0,
            )
        )
        .values(n=contact_counts.c.n - 1)
    )


def _count_statement(conn: Connection, cap: int | None, returning: bool) -> Any:
    """``n = n + 1`` on the recipient's day (only while ``n < cap`` when capped)."""
    stmt = upsert_insert(conn)(contact_counts).values(
        customer_id=bindparam("cid"), local_day=bindparam("day"), n=1
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["customer_id", "local_day"],
        set_={"n": contact_counts.c.n + 1},
        where=contact_counts.c.n < cap if cap is not None else None,
    )
    return stmt.returning(contact_counts.c.n) if returning else stmt


def count(conn: Connection, customer_id: str, local_day: date, cap: int | None) -> bool:
    """Count one more message on the recipient's day, unless ``cap`` is reached."""
    stmt = _count_statement(conn, cap, returning=True)
    return conn.execute(stmt, {"cid": customer_id, "day": local_day}).first() is not None


def row_of(r: Any) -> DeliveryRow:
    return DeliveryRow(
        idempotency_key=r.idempotency_key,
        run_id=r.run_id,
        customer_id=r.customer_id,
        channel=r.channel,
        transport=r.transport,
        state=r.state,
        payload=json.loads(r.payload),
        attempts=r.attempts,
        attempt_started_at=utc(r.attempt_started_at),
        send_after=utc(r.send_after),
        provider_message_id=r.provider_message_id,
        claim_owner=r.claim_owner,
        lease_until=utc(r.lease_until),
        offer_id=r.offer_id,
        local_day=r.local_day,
        time_zone=r.time_zone or "UTC",
    )


def states_in(conn: Connection, keys: Sequence[str]) -> dict[str, str]:
    """The ledger state of each key that has a row."""
    out: dict[str, str] = {}
    for i in range(0, len(keys), 500):
        chunk = list(keys[i : i + 500])
        rows = conn.execute(
            select(deliveries.c.idempotency_key, deliveries.c.state).where(
                deliveries.c.idempotency_key.in_(chunk)
            )
        )
        out.update({str(k): str(v) for k, v in rows})
    return out


def reserve_in(
    conn: Connection, items: Sequence[Reservation], cap: int | None, now: datetime
) -> ReserveOutcome:
    """Reserve, in ``conn``'s transaction, every new item that the daily cap allows.

    Every reservation counts on the recipient's day whether its campaign has a cap or
    not, so capped campaigns see what uncapped ones send; ``cap`` is enforced when given
    (a conditional upsert, ``n = n + 1 WHERE n < cap``)."""
    outcome = ReserveOutcome(existing=states_in(conn, [i.idempotency_key for i in items]))
    fresh = sorted(
        (i for i in items if i.idempotency_key not in outcome.existing),
        key=lambda i: (i.customer_id, i.local_day),
    )
    if cap is None:  # every message counts, none is refused: one statement for all
        if fresh:
            conn.execute(
                _count_statement(conn, None, returning=False),
                [{"cid": i.customer_id, "day": i.local_day} for i in fresh],
            )
        allowed = list(fresh)
    else:
        capped = _count_statement(conn, cap, returning=True)
        allowed = []
        for item in fresh:
            if conn.execute(capped, {"cid": item.customer_id, "day": item.local_day}).first():
                allowed.append(item)
            else:
                outcome.capped.append(item.idempotency_key)
    rows = []
    for item in allowed:
        deferred = item.send_after is not None and item.send_after > now
        rows.append(
            {
                "idempotency_key": item.idempotency_key,
                "run_id": item.run_id,
                "campaign_id": item.campaign_id,
                "customer_id": item.customer_id,
                "channel": item.channel,
                "transport": item.transport,
                "decision_id": item.decision_id,
                "offer_id": item.offer_id,
                "arm": item.arm,
                "state": DEFERRED if deferred else RESERVED,
                "local_day": item.local_day,
                "send_after": item.send_after,
                "time_zone": item.time_zone,
                "payload": json.dumps(item.payload, default=str),
                "attempts": 0,
                "reserved_at": now,
                "updated_at": now,
            }
        )
        (outcome.deferred if deferred else outcome.reserved).append(item.idempotency_key)
    if rows:
        conn.execute(deliveries.insert(), rows)
    return outcome
