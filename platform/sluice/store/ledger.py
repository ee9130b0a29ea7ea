"""The delivery ledger: one row per (run, customer, channel), exactly-once by construction.

States: ``reserved -> sent | failed | deferred | suppressed | expired`` (a deferred row
becomes ``reserved`` again when it is due). Rows are booked by
:func:`sluice.store.reservations.reserve_in` (with the frequency cap, in the booking's
transaction); this module moves them on.

Delivering is claim-based, and a claim is a lease: :meth:`Ledger.claim` stamps
``attempt_started_at``, the claiming worker (``claim_owner``) and an expiry
(``lease_until``) on a reserved row with no attempt in flight, and commits before the
provider is contacted. Only the owner settles the row (sent, failed, released); a
definite outcome clears the stamp. Nobody touches a live lease. A reserved row whose
stamp is still set after its lease ran out is *ambiguous* (its worker died or hung after
the provider may have taken the message): one worker takes it over
(:meth:`Ledger.take_over`) and reconciles it with the provider; it is never blindly sent
again. Before a claim, the send-time re-check may move a row (:meth:`Ledger.reschedule`,
:meth:`Ledger.expire`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, exists, or_, select, update
from sqlalchemy.engine import Connection

from sluice.store.ledger_reads import LedgerReads
from sluice.store.reservations import (
    DEFERRED,
    EXPIRED,
    FAILED,
    RESERVED,
    SENT,
    SUPPRESSED,
    DeliveryRow,
    Reservation,
    ReserveOutcome,
    count,
    reserve_in,
    uncount,
)
from sluice.store.schema import arm_states, deliveries, suppressions

__all__ = ["DeliveryRow", "Ledger", "Reservation", "ReserveOutcome"]


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


class Ledger(LedgerReads):
    """The ledger's writes: reserving, claiming under a lease, settling, moving rows."""

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
        return key in self.claim_many([key], owner, lease, brand)

    def claim_many(
        self, keys: Sequence[str], owner: str, lease: timedelta, brand: str | None = None
    ) -> set[str]:
        """:meth:`claim` for many rows in one statement, under one lease; the keys that
        ``owner`` now holds."""
        if not keys:
            return set()
        now = self.clock.now()
        conditions = [
            deliveries.c.idempotency_key.in_(list(keys)),
            deliveries.c.state == RESERVED,
            deliveries.c.attempt_started_at.is_(None),
        ]
        if brand is not None:
            conditions += [~_suppressed(brand), ~_arm_paused()]
        stamp = {"attempt_started_at": now, "claim_owner": owner, "lease_until": now + lease}
        with self.engine.begin() as conn:
            conn.execute(
                update(deliveries)
                .where(and_(*conditions))
                .values(attempts=deliveries.c.attempts + 1, updated_at=now, **stamp)
            )
            held = select(deliveries.c.idempotency_key).where(
                and_(
                    deliveries.c.idempotency_key.in_(list(keys)),
                    deliveries.c.state == RESERVED,
                    *(deliveries.c[k] == v for k, v in stamp.items()),
                )
            )
            return {str(k) for (k,) in conn.execute(held)}

    def mark_sent_many(self, sent: Sequence[tuple[str, str]], owner: str) -> None:
        """Settle many of ``owner``'s attempts as sent (key, provider message id) in one
        transaction; a row whose lease was taken over meanwhile is left to its taker,
        whose reconciliation finds it delivered."""
        if not sent:
            return
        settle = (
            update(deliveries)
            .where(
                and_(
                    deliveries.c.idempotency_key == bindparam("key"),
                    *self._held(owner),
                )
            )
            .values(
                state=SENT,
                attempt_started_at=None,
                lease_until=None,
                provider_message_id=bindparam("provider_id"),
                error=None,
                updated_at=self.clock.now(),
            )
        )
        with self.engine.begin() as conn:
            conn.execute(settle, [{"key": k, "provider_id": p} for k, p in sent])

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
                uncount(conn, row.customer_id, row.local_day)
                if not count(conn, row.customer_id, day, cap):
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
            uncount(conn, row.customer_id, row.local_day)
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
            uncount(conn, row.customer_id, row.local_day)
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
                uncount(conn, row.customer_id, row.local_day)
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
