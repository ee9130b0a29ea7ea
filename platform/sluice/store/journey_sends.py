"""What became of a journey's sends, and withdrawing those an exit overtook.

A journey's send step is delivered as a run (``j.<journey>.<step>.<generation>``), so
its outcome per customer is that run's audit record and ledger row. An exit withdraws
the instance's messages that are booked but not yet handed to a provider (deferred, or
reserved with no attempt started): they become ``withdrawn`` and stop counting against
the recipient's frequency cap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, func, or_, select, update
from sqlalchemy.engine import Connection

from sluice.store.db import utc
from sluice.store.reservations import DEFERRED, RESERVED, WITHDRAWN, uncount
from sluice.store.schema import audit, deliveries


@dataclass(frozen=True)
class SendOutcome:
    outcome: str
    """The audit outcome (reserved, deferred, rejected, review, holdout, no_offer, ...)."""
    gate: str | None
    reason: str | None
    state: str | None
    """The ledger row's state, when one was booked."""
    send_after: datetime | None


def send_outcomes(
    engine: Engine, run_id: str, customer_ids: Sequence[str]
) -> dict[str, SendOutcome]:
    out: dict[str, SendOutcome] = {}
    with engine.connect() as conn:
        for i in range(0, len(customer_ids), 500):
            chunk = list(customer_ids[i : i + 500])
            rows = conn.execute(
                select(
                    audit.c.customer_id,
                    audit.c.outcome,
                    audit.c.gate,
                    audit.c.reason,
                    deliveries.c.state,
                    deliveries.c.send_after,
                )
                .select_from(
                    audit.outerjoin(
                        deliveries, deliveries.c.idempotency_key == audit.c.idempotency_key
                    )
                )
                .where(and_(audit.c.run_id == run_id, audit.c.customer_id.in_(chunk)))
            )
            for r in rows:
                out[str(r.customer_id)] = SendOutcome(
                    str(r.outcome), r.gate, r.reason, r.state, utc(r.send_after)
                )
    return out


def _runs_of(journey_id: str, generation: int) -> Any:
    return and_(
        deliveries.c.run_id.like(f"j.{journey_id}.%"),
        deliveries.c.run_id.like(f"%.{generation}"),
        deliveries.c.campaign_id == journey_id,
    )


def withdraw(
    conn: Connection, journey_id: str, customer_id: str, generation: int, why: str, now: datetime
) -> int:
    """Withdraw the instance's undelivered messages (inside the exit's transaction)."""
    waiting = or_(
        deliveries.c.state == DEFERRED,
        and_(deliveries.c.state == RESERVED, deliveries.c.attempt_started_at.is_(None)),
    )
    where = and_(deliveries.c.customer_id == customer_id, _runs_of(journey_id, generation), waiting)
    rows = conn.execute(
        select(deliveries.c.idempotency_key, deliveries.c.local_day).where(where)
    ).all()
    for key, day in rows:
        done = conn.execute(
            update(deliveries)
            .where(and_(deliveries.c.idempotency_key == key, waiting))
            .values(state=WITHDRAWN, error=why[:200], updated_at=now)
        )
        if done.rowcount == 1:
            uncount(conn, customer_id, day)
    return len(rows)


def due_deferrals(engine: Engine, now: datetime) -> list[str]:
    """Runs (campaigns and journey steps) with deferred messages whose time has come."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(deliveries.c.run_id, func.count())
            .where(and_(deliveries.c.state == DEFERRED, deliveries.c.send_after <= now))
            .group_by(deliveries.c.run_id)
        ).all()
    return [str(r[0]) for r in rows]


def runs_with_pending(engine: Engine) -> list[str]:
    """Runs with reserved messages not yet sent (after a crash: owed deliveries)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(deliveries.c.run_id).where(deliveries.c.state == RESERVED).distinct()
        ).all()
    return [str(r[0]) for r in rows]
