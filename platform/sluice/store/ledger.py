"""The delivery ledger: one row per (run, customer, channel), exactly-once by construction.

States: ``reserved -> sent | failed | deferred | suppressed`` (a deferred row becomes
``reserved`` again when it is due). Reserving a send and counting it against the
recipient's daily frequency cap happen in one transaction, with a conditional upsert on
``contact_counts`` (``n = n + 1 WHERE n < cap``), so two campaigns running at once can
never push a recipient past the cap, on SQLite or PostgreSQL.

Delivering is claim-based, and a claim is a lease: :meth:`Ledger.claim` stamps
``attempt_started_at``, the claiming worker (``claim_owner``) and an expiry
(``lease_until``) on a reserved row with no attempt in flight, and commits before the
provider is contacted. Only the owner settles the row (sent, failed, released); a
definite outcome clears the stamp. Nobody touches a live lease. A reserved row whose
stamp is still set after its lease ran out is *ambiguous* (its worker died or hung after
the provider may have taken the message): one worker takes it over
(:meth:`Ledger.take_over`) and reconciles it with the provider; it is never blindly sent
again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, exists, func, or_, select, update
from sqlalchemy.engine import Connection

from sluice.contracts.clock import SYSTEM_CLOCK, Clock
from sluice.contracts.delivery import DeliveryState
from sluice.store.db import utc
from sluice.store.schema import arm_states, contact_counts, deliveries, suppressions

RESERVED, SENT, FAILED, DEFERRED, SUPPRESSED, EXPIRED = (s.value for s in DeliveryState)


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


def _count(conn: Connection, customer_id: str, local_day: date, cap: int | None) -> bool:
    """Count one more message on the recipient's day, unless ``cap`` is reached."""
    stmt = _insert(conn)(contact_counts).values(customer_id=customer_id, local_day=local_day, n=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=["customer_id", "local_day"],
        set_={"n": contact_counts.c.n + 1},
        where=contact_counts.c.n < cap if cap is not None else None,
    ).returning(contact_counts.c.n)
    return conn.execute(stmt).first() is not None


def _unclaimed(conn: Connection, key: str) -> Any:
    """(customer id, local day) of ``key`` if it is a reserved row with no attempt in
    flight, else None."""
    return conn.execute(
        select(deliveries.c.customer_id, deliveries.c.local_day).where(
            and_(
                deliveries.c.idempotency_key == key,
                deliveries.c.state == RESERVED,
                deliveries.c.attempt_started_at.is_(None),
            )
        )
    ).first()


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
    for item in fresh:
        if not _count(conn, item.customer_id, item.local_day, cap):
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
                time_zone=item.time_zone,
                payload=json.dumps(item.payload, default=str),
                attempts=0,
                reserved_at=now,
                updated_at=now,
            )
        )
        (outcome.deferred if deferred else outcome.reserved).append(item.idempotency_key)
    return outcome


class Ledger:
    def __init__(self, engine: Engine, clock: Clock = SYSTEM_CLOCK) -> None:
        self.engine = engine
        self.clock = clock

    def states(self, keys: Sequence[str]) -> dict[str, str]:
        with self.engine.connect() as conn:
            return states_in(conn, keys)

    def reserve(
        self, items: Sequence[Reservation], cap: int | None, now: datetime | None = None
    ) -> ReserveOutcome:
        """Reserve every new item that the daily cap allows, in one transaction."""
        with self.engine.begin() as conn:
            return reserve_in(conn, items, cap, now or self.clock.now())

    def claim(self, key: str, owner: str, lease: timedelta, brand: str | None = None) -> bool:
        """Lease a reserved row with no attempt in flight to ``owner`` for ``lease``; False
        if it is not one (sent, failed, withdrawn, or another worker's attempt).

        With ``brand``, a row whose recipient is suppressed (for the brand or globally, on
        its channel or all) or whose campaign arm is paused is not claimed either: the
        check and the stamp are one statement, so a suppression committed before the
        claim always wins (see :meth:`withdraw_blocked`)."""
        now = self.clock.now()
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
                .values(
                    attempts=deliveries.c.attempts + 1,
                    attempt_started_at=now,
                    claim_owner=owner,
                    lease_until=now + lease,
                    updated_at=now,
                )
            )
            return bool(done.rowcount == 1)

    def reschedule(
        self, key: str, day: date, cap: int | None, send_after: datetime | None = None
    ) -> str:
        """The send-time re-check moved a reserved, unclaimed row: to ``day`` (its count
        on the recipient's cap moves with it, within ``cap``) and, with ``send_after``,
        back to ``deferred``. Returns ``moved``, ``deferred``, ``capped`` (the new day is
        full: the row fails, counted nowhere) or ``gone`` (no longer such a row)."""
        now = self.clock.now()
        with self.engine.begin() as conn:
            row = _unclaimed(conn, key)
            if row is None:
                return "gone"
            if row.local_day != day:
                _uncount(conn, row.customer_id, row.local_day)
                if not _count(conn, row.customer_id, day, cap):
                    conn.execute(
                        update(deliveries)
                        .where(deliveries.c.idempotency_key == key)
                        .values(
                            state=FAILED,
                            error=f"frequency_cap: {day} already has {cap} message(s)",
                            updated_at=now,
                        )
                    )
                    return "capped"
            values: dict[str, Any] = {"local_day": day, "updated_at": now}
            if send_after is not None:
                values.update(state=DEFERRED, send_after=send_after)
            conn.execute(
                update(deliveries).where(deliveries.c.idempotency_key == key).values(**values)
            )
            return "deferred" if send_after is not None else "moved"

    def expire(self, key: str, reason: str) -> bool:
        """A reserved, unclaimed row whose offer ended: it will never be sent, and no
        longer counts against the recipient's cap."""
        now = self.clock.now()
        with self.engine.begin() as conn:
            row = _unclaimed(conn, key)
            if row is None:
                return False
            conn.execute(
                update(deliveries)
                .where(deliveries.c.idempotency_key == key)
                .values(state=EXPIRED, error=reason, updated_at=now)
            )
            _uncount(conn, row.customer_id, row.local_day)
            return True

    def take_over(self, key: str, owner: str, lease: timedelta) -> bool:
        """Take an interrupted attempt whose lease ran out, to reconcile it; False while
        the lease is live (its worker may be talking to the provider right now) or once
        the row is settled."""
        now = self.clock.now()
        with self.engine.begin() as conn:
            done = conn.execute(
                update(deliveries)
                .where(
                    and_(
                        deliveries.c.idempotency_key == key,
                        deliveries.c.state == RESERVED,
                        deliveries.c.attempt_started_at.is_not(None),
                        or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until <= now),
                    )
                )
                .values(claim_owner=owner, lease_until=now + lease, updated_at=now)
            )
            return bool(done.rowcount == 1)

    def withdraw_blocked(self, key: str, brand: str) -> str | None:
        """If the reserved row is blocked by a suppression or a paused arm, withdraw it
        (state ``suppressed``, no longer counted against the cap) and say why."""
        now = self.clock.now()
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

    def release(self, key: str, error: str, owner: str | None = None) -> bool:
        """The attempt definitely did not reach the provider: the row may be tried again.
        With ``owner``, only while that worker still holds the lease."""
        return self._settle(
            key, owner, state=RESERVED, attempt_started_at=None, lease_until=None, error=error
        )

    def mark_sent(self, key: str, provider_message_id: str, owner: str | None = None) -> bool:
        return self._settle(
            key,
            owner,
            state=SENT,
            attempt_started_at=None,
            lease_until=None,
            provider_message_id=provider_message_id,
            error=None,
        )

    def mark_failed(
        self, key: str, error: str, delivered_maybe: bool = False, owner: str | None = None
    ) -> bool:
        """A terminal failure. Unless the provider may have the message after all
        (``delivered_maybe``), the send no longer counts against the daily cap."""
        now = self.clock.now()
        with self.engine.begin() as conn:
            row = conn.execute(
                select(deliveries.c.customer_id, deliveries.c.local_day, deliveries.c.state).where(
                    deliveries.c.idempotency_key == key
                )
            ).first()
            done = conn.execute(
                update(deliveries)
                .where(and_(deliveries.c.idempotency_key == key, *self._held(owner)))
                .values(
                    state=FAILED,
                    attempt_started_at=None,
                    lease_until=None,
                    error=error,
                    updated_at=now,
                )
            )
            if done.rowcount != 1:
                return False
            if row is not None and row.state != FAILED and not delivered_maybe:
                _uncount(conn, row.customer_id, row.local_day)
            return True

    def mark_suppressed(self, key: str, reason: str) -> None:
        self._settle(key, None, state=SUPPRESSED, attempt_started_at=None, error=reason)

    @staticmethod
    def _held(owner: str | None) -> list[Any]:
        """Conditions that the row is still ``owner``'s attempt (none without an owner)."""
        if owner is None:
            return []
        return [deliveries.c.claim_owner == owner, deliveries.c.state == RESERVED]

    def _settle(self, key: str, owner: str | None, **values: Any) -> bool:
        with self.engine.begin() as conn:
            done = conn.execute(
                update(deliveries)
                .where(and_(deliveries.c.idempotency_key == key, *self._held(owner)))
                .values(updated_at=self.clock.now(), **values)
            )
            return bool(done.rowcount == 1)

    def promote_due(self, run_id: str, now: datetime | None = None) -> int:
        """Deferred rows whose time has come become reserved again."""
        now = now or self.clock.now()
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
