"""Outcome events, stored once per event id; suppressions written in the same transaction.

An unsubscribe, bounce or complaint that is accepted puts its customer on the
suppression list before the transaction commits, so the very next gate check or send
claim (see :meth:`sluice.store.ledger.Ledger.claim`) already sees it.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, and_, select

from sluice.contracts.clock import SYSTEM_CLOCK, Clock
from sluice.contracts.feedback import SUPPRESSING, CustomerEvent, EventType, OutcomeEvent
from sluice.store.db import utc
from sluice.store.dialect import upsert_insert
from sluice.store.journeys import inbox_add
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
class PropertiedEvent:
    type: str
    customer_id: str
    occurred_at: datetime
    properties: dict[str, Any]


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

    def add(
        self,
        items: Sequence[OutcomeEvent | CustomerEvent],
        source: str,
        inbox_types: Collection[str] = (),
    ) -> StoredEvents:
        """Store new events (``customer_id`` resolved), skip known ids, suppress at once;
        new events of ``inbox_types`` are queued for the journeys in the same transaction."""
        seen: set[str] = set()
        unique: list[OutcomeEvent | CustomerEvent] = []
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
                                **_columns(e),
                                "customer_id": e.customer_id,
                                "occurred_at": e.occurred_at.astimezone(UTC),
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
                inbox_add(
                    conn,
                    [
                        {
                            "event_id": e.event_id,
                            "type": str(e.type),
                            "customer_id": e.customer_id,
                            "occurred_at": e.occurred_at.astimezone(UTC),
                            "properties": _properties(e),
                        }
                        for e in chunk
                        if e.event_id in stored and str(e.type) in inbox_types
                    ],
                )
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
                    if isinstance(e, OutcomeEvent)
                    and e.event_id in stored
                    and e.type in SUPPRESSING
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

    def with_properties(
        self, customer_ids: set[str], since: datetime, until: datetime
    ) -> list[PropertiedEvent]:
        """Events of the given customers in ``[since, until)``, with their properties."""
        out: list[PropertiedEvent] = []
        ids = sorted(customer_ids)
        with self.engine.connect() as conn:
            for i in range(0, len(ids), CHUNK):
                query = select(
                    events.c.type, events.c.customer_id, events.c.occurred_at, events.c.properties
                ).where(
                    and_(
                        events.c.customer_id.in_(ids[i : i + CHUNK]),
                        events.c.occurred_at >= since,
                        events.c.occurred_at < until,
                    )
                )
                for r in conn.execute(query):
                    out.append(
                        PropertiedEvent(
                            r.type,
                            r.customer_id,
                            utc(r.occurred_at) or since,
                            json.loads(r.properties) if r.properties else {},
                        )
                    )
        return out

    def count(self) -> int:
        from sqlalchemy import func

        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(events)).scalar_one())


def _columns(e: OutcomeEvent | CustomerEvent) -> dict[str, Any]:
    """The type-dependent columns (every row of a multi-row insert names the same ones)."""
    if isinstance(e, CustomerEvent):
        return {
            "type": e.type,
            "run_id": None,
            "campaign_id": None,
            "channel": None,
            "revenue": None,
            "properties": _properties(e),
        }
    return {
        "type": e.type.value,
        "run_id": e.run_id,
        "campaign_id": e.campaign_id,
        "channel": e.channel.value if e.channel else None,
        "revenue": e.revenue,
        "properties": None,
    }


def _properties(e: OutcomeEvent | CustomerEvent) -> str | None:
    if isinstance(e, CustomerEvent):
        return json.dumps(e.properties, default=str)
    fields = {"run_id": e.run_id, "campaign_id": e.campaign_id, "revenue": e.revenue}
    if e.channel is not None:
        fields["channel"] = e.channel.value
    if e.brand is not None:
        fields["brand"] = e.brand
    return json.dumps({k: v for k, v in fields.items() if v is not None})


def _suppressed_channel(e: OutcomeEvent) -> str:
    """Complaints stop every channel; unsubscribes and bounces the channel they came from."""
    if e.type is EventType.COMPLAINT or e.channel is None:
        return "*"
    return e.channel.value
