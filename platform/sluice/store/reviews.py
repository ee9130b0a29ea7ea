"""The review queue: messages a gate handed to a person.

An item is keyed by the message's idempotency key, so a retried batch or a resumed run
never queues a message twice. It carries the candidate row itself (one-row Arrow IPC
stream, base64) so that, once approved, the message is gated and delivered exactly as
the run would have sent it. Items are ``pending`` until a person approves or rejects
them, or until they expire (the campaign's review window is over).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
from sqlalchemy import Engine, and_, or_, select, update
from sqlalchemy.engine import Connection

from sluice.contracts.api import VISIBLE
from sluice.contracts.clock import SYSTEM_CLOCK, Clock
from sluice.errors import ConflictError, InputError, NotFoundError
from sluice.store.db import utc
from sluice.store.dialect import upsert_insert
from sluice.store.schema import reviews

PENDING, APPROVED, REJECTED, EXPIRED = "pending", "approved", "rejected", "expired"
APPROVAL_LEASE = timedelta(minutes=5)
"""How long an approval holds its item while its message is gated, booked and sent."""


def encode_row(table: pa.Table) -> str:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return base64.b64encode(sink.getvalue().to_pybytes()).decode()


def decode_row(text: str) -> pa.Table:
    return pa.ipc.open_stream(base64.b64decode(text)).read_all()


@dataclass(frozen=True)
class ReviewItem:
    review_id: str
    run_id: str
    campaign_id: str
    customer_id: str
    channel: str
    offer_id: str | None
    gate: str
    reason: str
    detail: str | None
    message: str
    status: str
    decided_by: str | None
    decided_at: datetime | None
    note: str | None
    result: str | None
    expires_at: datetime
    created_at: datetime
    lease_until: datetime | None = None
    """While an approval is being carried out: when its hold on the item ends."""

    def table(self) -> pa.Table:
        return decode_row(self.message)

    def copy(self) -> dict[str, Any]:
        row = self.table().to_pylist()[0]
        return {
            k: row.get(k)
            for k in ("subject", "preheader", "body", "cta", "text", "score", "first_name")
            if row.get(k) is not None
        }

    def summary(self) -> dict[str, Any]:
        return {
            k: (v.isoformat() if isinstance(v, datetime) else v)
            for k, v in self.__dict__.items()
            if k not in ("message", "lease_until")
        }


def enqueue_in(conn: Connection, items: Sequence[dict[str, Any]], now: datetime) -> None:
    """Queue items in ``conn``'s transaction; ones already queued are kept as they are."""
    if items:
        conn.execute(
            upsert_insert(conn)(reviews).on_conflict_do_nothing(index_elements=["review_id"]),
            [{"status": PENDING, "created_at": now, **i} for i in items],
        )


def settle_item_in(conn: Connection, review_id: str, result: str) -> None:
    """Record what became of an approved item in ``conn``'s transaction; its lease ends."""
    conn.execute(
        update(reviews)
        .where(reviews.c.review_id == review_id)
        .values(result=result, lease_until=None)
    )


class ReviewQueue:
    def __init__(self, engine: Engine, clock: Clock = SYSTEM_CLOCK) -> None:
        self.engine = engine
        self.clock = clock

    def enqueue(self, items: Sequence[dict[str, Any]]) -> None:
        """Queue items (dicts of the table's columns); ones already queued are kept as is."""
        if not items:
            return
        with self.engine.begin() as conn:
            enqueue_in(conn, items, self.clock.now())

    def _item(self, row: Any) -> ReviewItem:
        data = dict(row._mapping)
        for k in ("decided_at", "expires_at", "created_at", "lease_until"):
            data[k] = utc(data[k])
        return ReviewItem(**data)

    def get(self, review_id: str) -> ReviewItem:
        with self.engine.connect() as conn:
            row = conn.execute(select(reviews).where(reviews.c.review_id == review_id)).first()
        if row is None:
            raise NotFoundError(f"review_id: no review item {review_id}", field="review_id")
        return self._item(row)

    def list(
        self, run_id: str | None = None, status: str | None = PENDING, limit: int = 100
    ) -> list[ReviewItem]:
        query = select(reviews).order_by(reviews.c.created_at, reviews.c.review_id).limit(limit)
        if run_id:
            query = query.where(reviews.c.run_id == run_id)
        if status:
            query = query.where(reviews.c.status == status)
        with self.engine.connect() as conn:
            return [self._item(r) for r in conn.execute(query)]

    def expire(self, now: datetime | None = None) -> int:
        """Close every pending item whose review window is over."""
        now = now or self.clock.now()
        with self.engine.begin() as conn:
            done = conn.execute(
                update(reviews)
                .where(and_(reviews.c.status == PENDING, reviews.c.expires_at <= now))
                .values(status=EXPIRED, decided_at=now, decided_by="sluice", result="expired")
            )
        return int(done.rowcount or 0)

    def decide(
        self,
        review_id: str,
        status: str,
        by: str,
        note: str | None,
        result: str | None,
        lease: timedelta | None = APPROVAL_LEASE,
    ) -> ReviewItem:
        """Record a person's decision on a pending item, inside its review window.

        Single winner: the first decision takes the item. An approval holds a lease while
        its message goes through the gates and the ledger; if that approval is
        interrupted (the lease runs out with no result), approving again finishes it. An
        approval with ``lease=None`` takes only a pending item and leaves its delivery to
        a worker (:meth:`claim_approved`). An item whose window is over is refused
        whatever its history."""
        if not re.search(VISIBLE, by):
            raise InputError("--by: say who decides", field="by")
        now = self.clock.now()
        values: dict[str, Any] = {
            "status": status,
            "decided_by": by,
            "decided_at": now,
            "note": note,
            "result": result,
        }
        takeable = reviews.c.status == PENDING
        if status == APPROVED:
            interrupted = and_(
                reviews.c.status == APPROVED,
                reviews.c.result.is_(None),
                or_(reviews.c.lease_until.is_(None), reviews.c.lease_until <= now),
            )
            if lease is not None:
                takeable = or_(takeable, interrupted)
            values.update(lease_until=None if lease is None else now + lease)
        with self.engine.begin() as conn:
            done = conn.execute(
                update(reviews)
                .where(and_(reviews.c.review_id == review_id, reviews.c.expires_at > now, takeable))
                .values(**values)
            )
        if not done.rowcount:
            item = self.get(review_id)
            if item.status == PENDING or (item.status == APPROVED and item.result is None):
                if item.expires_at <= now:
                    self.expire(now)
                    raise ConflictError(
                        f"review_id: {review_id} is already expired "
                        f"(its window closed at {item.expires_at.isoformat()})",
                        field="review_id",
                    )
                raise ConflictError(
                    f"review_id: {review_id} is being approved by {item.decided_by} right now",
                    field="review_id",
                )
            raise ConflictError(
                f"review_id: {review_id} is already {item.status}"
                + (f" by {item.decided_by}" if item.decided_by else ""),
                field="review_id",
            )
        return self.get(review_id)

    def settle(self, review_id: str, result: str) -> None:
        """What became of an approved item (reserved, deferred, sent, rejected by a gate)."""
        with self.engine.begin() as conn:
            settle_item_in(conn, review_id, result)

    def approved_waiting(self, limit: int) -> tuple[ReviewItem, ...]:
        """Approved items whose delivery nobody holds: queued by the API, or interrupted."""
        now = self.clock.now()
        query = (
            select(reviews)
            .where(
                and_(
                    reviews.c.status == APPROVED,
                    reviews.c.result.is_(None),
                    or_(reviews.c.lease_until.is_(None), reviews.c.lease_until <= now),
                )
            )
            .order_by(reviews.c.decided_at, reviews.c.review_id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return tuple(self._item(r) for r in conn.execute(query))

    def claim_approved(self, item: ReviewItem, lease: timedelta) -> bool:
        """Take ``item`` (from :meth:`approved_waiting`) for one delivery attempt: single
        winner among workers, the lease held as long as the attempt may take."""
        now = self.clock.now()
        held = reviews.c.lease_until
        with self.engine.begin() as conn:
            done = conn.execute(
                update(reviews)
                .where(
                    and_(
                        reviews.c.review_id == item.review_id,
                        reviews.c.status == APPROVED,
                        reviews.c.result.is_(None),
                        or_(held.is_(None), held <= now),
                    )
                )
                .values(lease_until=now + lease)
            )
        return bool(done.rowcount)
