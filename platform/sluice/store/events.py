"""Outcome events, stored once per event id; suppressions written in the same transaction.

An unsubscribe, bounce or complaint that is accepted puts its customer on the
suppression list before the transaction commits, so the very next gate check or send
claim (see :meth:`sluice.store.ledger.Ledger.claim`) already sees it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, and_, select

from sluice.contracts.clock import SYSTEM_CLOCK, Clock
from sluice.contracts.feedback import SUPPRESSING, EventType, OutcomeEvent
from sluice.store.db import utc
from sluice.store.dialect import upsert_insert
from sluice.store.schema import events, suppressions

CHUNK = 500


@dataclass(frozen=True)
class StoredEvents:
    accepted: list[str]
    """Event ids stored by this call."""
    duplicates: list[str]
    """Event ids already stored (or repeated within the call)."""
    suppressions: int
    """Suppression entries created."""


@dataclass(frozen=True)
class EventRow:
    event_id: str
    type: str
    customer_id: str
    occurred_at: datetime
    run_id: str | None
    revenue: float | None


class EventStore:
    def __init__(self, engine: Engine, clock: Clock = SYSTEM_CLOCK) -> None:
        self.engine = engine
        self.clock = clock

    def add(self, items: Sequence[OutcomeEvent], source: str) -> StoredEvents:
        """Store new events (``customer_id`` resolved), skip known ids, suppress at once."""
        seen: set[str] = set()
        unique: list[OutcomeEvent] = []
        duplicates: list[str] = []
        for e in items:
            if e.customer_id is None:
                raise ValueError(f"event {e.event_id}: customer_id must be resolved before storing")
            if e.event_id in seen:
                duplicates.append(e.event_id)
            else:
                seen.add(e.event_id)
                unique.append(e)
        accepted: list[str] = []
        created = 0
        now = self.clock.now()
        with self.engine.begin() as conn:
            insert = upsert_insert(conn)
            for i in range(0, len(unique), CHUNK):
                chunk = unique[i : i + CHUNK]
                stmt = (
                    insert(events)
                    .values(
                        [
                            {
                                "event_id": e.event_id,
                                "type": e.type.value,
                                "customer_id": e.customer_id,
                                "occurred_at": e.occurred_at.astimezone(UTC),
                                "run_id": e.run_id,
                                "campaign_id": e.campaign_id,
                                "channel": e.channel.value if e.channel else None,
                                "revenue": e.revenue,
                                "source": source,
                                "received_at": now,
                            }
                            for e in chunk
                        ]
                    )
                    .on_conflict_do_nothing(index_elements=["event_id"])
                    .returning(events.c.event_id)
                )
                stored = {str(r[0]) for r in conn.execute(stmt)}
                accepted += [e.event_id for e in chunk if e.event_id in stored]
                duplicates += [e.event_id for e in chunk if e.event_id not in stored]
                entries = [
                    {
                        "customer_id": e.customer_id,
                        "channel": _suppressed_channel(e),
                        "brand": e.brand or "*",
                        "reason": SUPPRESSING[e.type],
                        "source": f"event:{e.event_id}"[:64],
                        "created_at": now,
                    }
                    for e in chunk
                    if e.event_id in stored and e.type in SUPPRESSING
                ]
                if entries:
                    done = conn.execute(
                        insert(suppressions)
                        .values(entries)
                        .on_conflict_do_nothing(
                            index_elements=["customer_id", "channel", "brand", "reason"]
                        )
                        .returning(suppressions.c.id)
                    )
                    created += len(done.fetchall())
        return StoredEvents(accepted, duplicates, created)

    def for_customers(
        self, customer_ids: set[str], since: datetime, until: datetime
    ) -> list[EventRow]:
        """Events of the given customers that occurred in ``[since, until)``."""
        out: list[EventRow] = []
        query = select(
            events.c.event_id,
            events.c.type,
            events.c.customer_id,
            events.c.occurred_at,
            events.c.run_id,
            events.c.revenue,
        ).where(and_(events.c.occurred_at >= since, events.c.occurred_at < until))
        with self.engine.connect() as conn:
            for r in conn.execute(query):
                if r.customer_id in customer_ids:
                    out.append(
                        EventRow(
                            r.event_id,
                            r.type,
                            r.customer_id,
                            utc(r.occurred_at) or since,
                            r.run_id,
                            r.revenue,
                        )
                    )
        return out

    def count(self) -> int:
        from sqlalchemy import func

        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(events)).scalar_one())


def _suppressed_channel(e: OutcomeEvent) -> str:
    """Complaints stop every channel; unsubscribes and bounces the channel they came from."""
    if e.type is EventType.COMPLAINT or e.channel is None:
        return "*"
    return e.channel.value
