"""The delivery ledger: one row per (run, customer, channel), exactly-once by construction.

States: ``reserved -> sent | failed | deferred | suppressed`` (a deferred row becomes
``reserved`` again when it is due). Reserving a send and counting it against the
recipient's daily frequency cap happen in one transaction, with a conditional upsert on
``contact_counts`` (``n = n + 1 WHERE n < cap``), so two campaigns running at once can
never push a recipient past the cap, on SQLite or PostgreSQL.

Delivering is claim-based: :meth:`Ledger.claim` stamps ``attempt_started_at`` on a
reserved row (only if no attempt is in flight) and commits before the provider is
contacted; a definite outcome clears it. After a crash, a reserved row whose stamp is
still set is *ambiguous* (the provider may or may not have it): it is reconciled, never
blindly sent again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine, and_, exists, func, or_, select, update
from sqlalchemy.engine import Connection

from sluice.contracts.delivery import DeliveryState
from sluice.store.db import utc
from sluice.store.schema import arm_states, contact_counts, deliveries, suppressions

RESERVED, SENT, FAILED, DEFERRED, SUPPRESSED = (s.value for s in DeliveryState)


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


def _insert(conn: Connection) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def _suppressed(brand: str) -> Any:
    """EXISTS a suppression entry for the row's customer, channel (or all) and brand."""
    return exists().where(
        and_(
            suppressions.c.customer_id == deliveries.c.customer_id,
            or_(suppressions.c.channel == deliveries.c.channel, suppressions.c.channel == "*"),
            or_(suppressions.c.brand == brand, suppressions.c.brand == "*"),
        )
    )


def _arm_paused() -> Any:
    """EXISTS a paused state for the row's campaign arm."""
    return exists().where(
        and_(
            arm_states.c.campaign_id == deliveries.c.campaign_id,
            arm_states.c.arm == deliveries.c.arm,
            arm_states.c.status == "paused",
        )
    )


def _uncount(conn: Connection, customer_id: str, local_day: date) -> None:
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


def _row(r: Any) -> DeliveryRow:
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
    )


class Ledger:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def states(self, keys: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(keys), 500):
                chunk = list(keys[i : i + 500])
                rows = conn.execute(
                    select(deliveries.c.idempotency_key, deliveries.c.state).where(
                        deliveries.c.idempotency_key.in_(chunk)
                    )
                )
                out.update({str(k): str(v) for k, v in rows})
        return out

    def reserve(
        self, items: Sequence[Reservation], cap: int | None, now: datetime | None = None
    ) -> ReserveOutcome:
        """Reserve every new item that the daily cap allows, in one transaction."""
        now = now or datetime.now(UTC)
        outcome = ReserveOutcome(existing=self.states([i.idempotency_key for i in items]))
        fresh = sorted(
            (i for i in items if i.idempotency_key not in outcome.existing),
            key=lambda i: (i.customer_id, i.local_day),
        )
        with self.engine.begin() as conn:
            insert = _insert(conn)
            for item in fresh:
                if cap is not None:
                    stmt = insert(contact_counts).values(
                        customer_id=item.customer_id, local_day=item.local_day, n=1
                    )
                    stmt = stmt.on_conflict_do_update(
                        index_elements=["customer_id", "local_day"],
                        set_={"n": contact_counts.c.n + 1},
                        where=contact_counts.c.n < cap,
                    ).returning(contact_counts.c.n)
                    if conn.execute(stmt).first() is None:
                        outcome.capped.append(item.idempotency_key)
                        continue
                deferred = item.send_after is not None and item.send_after > now
                conn.execute(
                    deliveries.insert().values(
                        idempotency_key=item.idempotency_key,
                        run_id=item.run_id,
                        campaign_id=item.campaign_id,
                        customer_id=item.customer_id,
                        channel=item.channel,
                        transport=item.transport,
                        decision_id=item.decision_id,
                        offer_id=item.offer_id,
                        arm=item.arm,
                        state=DEFERRED if deferred else RESERVED,
                        local_day=item.local_day,
                        send_after=item.send_after,
                        payload=json.dumps(item.payload, default=str),
                        attempts=0,
                        reserved_at=now,
                        updated_at=now,
                    )
                )
                (outcome.deferred if deferred else outcome.reserved).append(item.idempotency_key)
        return outcome

    def claim(self, key: str, brand: str | None = None) -> bool:
        """Stamp an attempt on a reserved row with none in flight; False if it is not one.

        With ``brand``, a row whose recipient is suppressed (for the brand or globally, on
        its channel or all) or whose campaign arm is paused is not claimed either: the
        check and the stamp are one statement, so a suppression committed before the
        claim always wins (see :meth:`withdraw_blocked`)."""
        now = datetime.now(UTC)
        conditions = [
            deliveries.c.idempotency_key == key,
            deliveries.c.state == RESERVED,
            deliveries.c.attempt_started_at.is_(None),
        ]
        if brand is not None:
            conditions += [~_suppressed(brand), ~_arm_paused()]
        with self.engine.begin() as conn:
            done = conn.execute(
                update(deliveries)
                .where(and_(*conditions))
                .values(attempts=deliveries.c.attempts + 1, attempt_started_at=now, updated_at=now)
            )
            return bool(done.rowcount == 1)

    def withdraw_blocked(self, key: str, brand: str) -> str | None:
        """If the reserved row is blocked by a suppression or a paused arm, withdraw it
        (state ``suppressed``, no longer counted against the cap) and say why."""
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            row = conn.execute(
                select(
                    deliveries.c.customer_id,
                    deliveries.c.local_day,
                    _suppressed(brand).label("suppressed"),
                    _arm_paused().label("paused"),
                ).where(
                    and_(
                        deliveries.c.idempotency_key == key,
                        deliveries.c.state.in_((RESERVED, DEFERRED)),
                        deliveries.c.attempt_started_at.is_(None),
                    )
                )
            ).first()
            if row is None or not (row.suppressed or row.paused):
                return None
            reason = "suppressed before sending" if row.suppressed else "arm paused"
            conn.execute(
                update(deliveries)
                .where(deliveries.c.idempotency_key == key)
                .values(state=SUPPRESSED, error=reason, updated_at=now)
            )
            _uncount(conn, row.customer_id, row.local_day)
            return reason

    def release(self, key: str, error: str) -> None:
        """The attempt definitely did not reach the provider: the row may be tried again."""
        self._set(key, state=RESERVED, attempt_started_at=None, error=error)

    def mark_sent(self, key: str, provider_message_id: str) -> None:
        self._set(
            key,
            state=SENT,
            attempt_started_at=None,
            provider_message_id=provider_message_id,
            error=None,
        )

    def mark_failed(self, key: str, error: str, delivered_maybe: bool = False) -> None:
        """A terminal failure. Unless the provider may have the message after all
        (``delivered_maybe``), the send no longer counts against the daily cap."""
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            row = conn.execute(
                select(deliveries.c.customer_id, deliveries.c.local_day, deliveries.c.state).where(
                    deliveries.c.idempotency_key == key
                )
            ).first()
            conn.execute(
                update(deliveries)
                .where(deliveries.c.idempotency_key == key)
                .values(state=FAILED, attempt_started_at=None, error=error, updated_at=now)
            )
            if row is not None and row.state != FAILED and not delivered_maybe:
                _uncount(conn, row.customer_id, row.local_day)

    def mark_suppressed(self, key: str, reason: str) -> None:
        self._set(key, state=SUPPRESSED, attempt_started_at=None, error=reason)

    def _set(self, key: str, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(deliveries)
                .where(deliveries.c.idempotency_key == key)
                .values(updated_at=datetime.now(UTC), **values)
            )

    def promote_due(self, run_id: str, now: datetime | None = None) -> int:
        """Deferred rows whose time has come become reserved again."""
        now = now or datetime.now(UTC)
        with self.engine.begin() as conn:
            done = conn.execute(
                update(deliveries)
                .where(
                    and_(
                        deliveries.c.run_id == run_id,
                        deliveries.c.state == DEFERRED,
                        deliveries.c.send_after <= now,
                    )
                )
                .values(state=RESERVED, updated_at=now)
            )
            return int(done.rowcount or 0)

    def pending(self, run_id: str, keys: Iterable[str] | None = None) -> list[DeliveryRow]:
        """Reserved rows of the run (optionally only ``keys``): unsent or ambiguous."""
        query = select(deliveries).where(
            and_(deliveries.c.run_id == run_id, deliveries.c.state == RESERVED)
        )
        if keys is not None:
            wanted = list(keys)
            if not wanted:
                return []
            query = query.where(deliveries.c.idempotency_key.in_(wanted))
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(query.order_by(deliveries.c.idempotency_key))]

    def counts(self, run_id: str) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(deliveries.c.state, func.count())
                .where(deliveries.c.run_id == run_id)
                .group_by(deliveries.c.state)
            )
            return {state: int(n) for state, n in rows}

    def rows(self, run_id: str) -> list[DeliveryRow]:
        with self.engine.connect() as conn:
            return [
                _row(r)
                for r in conn.execute(select(deliveries).where(deliveries.c.run_id == run_id))
            ]

    def contacts_many(self, keys: Sequence[tuple[str, date]]) -> dict[tuple[str, date], int]:
        """Messages counted per (customer, local day), for many keys in few queries."""
        wanted = set(keys)
        found: dict[tuple[str, date], int] = {}
        customers = sorted({k[0] for k in wanted})
        days = sorted({k[1] for k in wanted})
        with self.engine.connect() as conn:
            for i in range(0, len(customers), 500):
                chunk = customers[i : i + 500]
                rows = conn.execute(
                    select(
                        contact_counts.c.customer_id, contact_counts.c.local_day, contact_counts.c.n
                    ).where(
                        and_(
                            contact_counts.c.customer_id.in_(chunk),
                            contact_counts.c.local_day.in_(days),
                        )
                    )
                )
                for cid, day, n in rows:
                    if (cid, day) in wanted:
                        found[(cid, day)] = int(n)
        return found

    def contacts(self, customer_id: str) -> dict[date, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(contact_counts.c.local_day, contact_counts.c.n).where(
                    contact_counts.c.customer_id == customer_id
                )
            )
            return {d: int(n) for d, n in rows}
