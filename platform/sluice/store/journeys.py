"""Deployed journeys and the event inbox the orchestrator drains.

A journey is deployed once per id (a redeploy replaces its spec; instances carry on
from the step they are at) and is ``active`` or ``paused``. Events a deployed journey
reacts to are written to the inbox in the transaction that stores them
(:meth:`sluice.store.events.EventStore.add`), so the orchestrator applies each stored
event exactly once, in arrival order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.engine import Connection

from sluice.contracts.clock import SYSTEM_CLOCK, Clock
from sluice.contracts.journey import JourneySpec
from sluice.errors import NotFoundError
from sluice.store.db import utc
from sluice.store.dialect import upsert_insert
from sluice.store.schema import journey_inbox, journeys, runs, schedules

ACTIVE, PAUSED = "active", "paused"


@dataclass(frozen=True)
class JourneyRecord:
    journey_id: str
    spec: dict[str, Any]
    status: str
    deployed_by: str
    deployed_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class InboxEvent:
    seq: int
    event_id: str
    type: str
    customer_id: str
    occurred_at: datetime
    properties: dict[str, Any]


def _record(r: Any) -> JourneyRecord:
    return JourneyRecord(
        r.journey_id,
        json.loads(r.spec),
        r.status,
        r.deployed_by,
        utc(r.deployed_at) or r.deployed_at,
        utc(r.updated_at) or r.updated_at,
    )


class Journeys:
    def __init__(self, engine: Engine, clock: Clock = SYSTEM_CLOCK) -> None:
        self.engine = engine
        self.clock = clock

    def deploy(self, journey_id: str, spec: dict[str, Any], by: str) -> JourneyRecord:
        """Deploy (or redeploy) a journey; it starts ``active``. Returns the record."""
        now = self.clock.now()
        text = json.dumps(spec, sort_keys=True, default=str)
        digest = hashlib.sha256(text.encode()).hexdigest()
        with self.engine.begin() as conn:
            found = conn.execute(
                select(journeys.c.journey_id).where(journeys.c.journey_id == journey_id)
            ).first()
            values = {"spec": text, "spec_digest": digest, "deployed_by": by, "updated_at": now}
            if found is None:
                conn.execute(
                    journeys.insert().values(
                        journey_id=journey_id, status=ACTIVE, deployed_at=now, **values
                    )
                )
            else:
                conn.execute(
                    update(journeys).where(journeys.c.journey_id == journey_id).values(**values)
                )
        return self.get(journey_id)

    def get(self, journey_id: str) -> JourneyRecord:
        with self.engine.connect() as conn:
            r = conn.execute(select(journeys).where(journeys.c.journey_id == journey_id)).first()
        if r is None:
            raise NotFoundError(f"journey_id: no journey {journey_id!r} is deployed", field="id")
        return _record(r)

    def all(self) -> list[JourneyRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(journeys).order_by(journeys.c.journey_id)).all()
        return [_record(r) for r in rows]

    def set_status(self, journey_id: str, status: str) -> JourneyRecord:
        self.get(journey_id)
        with self.engine.begin() as conn:
            conn.execute(
                update(journeys)
                .where(journeys.c.journey_id == journey_id)
                .values(status=status, updated_at=self.clock.now())
            )
        return self.get(journey_id)

    def schedule_mark(self, subject: str) -> tuple[datetime | None, datetime]:
        """The last scheduled time started for ``subject`` and when it was first seen."""
        now = self.clock.now()
        with self.engine.begin() as conn:
            row = conn.execute(select(schedules).where(schedules.c.subject == subject)).first()
            if row is None:
                conn.execute(schedules.insert().values(subject=subject, created_at=now))
                return None, now
        return utc(row.last_at), utc(row.created_at) or now

    def mark_scheduled(self, subject: str, at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(schedules).where(schedules.c.subject == subject).values(last_at=at))

    def ensure_run(self, run_id: str, journey_id: str, spec: dict[str, Any], dry: bool) -> None:
        """The run a journey's send step delivers under: created on first use (by
        whichever orchestrator gets there first), its spec kept current with the
        deployed journey (a journey's runs stay open)."""
        text = json.dumps(spec, default=str)
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode())
        context = {"journey_id": journey_id, "decision_date": self.clock.today().isoformat()}
        with self.engine.begin() as conn:
            conn.execute(
                upsert_insert(conn)(runs)
                .values(
                    run_id=run_id,
                    campaign_id=journey_id,
                    spec=text,
                    spec_digest=digest.hexdigest(),
                    dry_run=dry,
                    status="journey",
                    context=json.dumps(context),
                    started_at=self.clock.now(),
                )
                .on_conflict_do_nothing(index_elements=["run_id"])
            )
            conn.execute(
                update(runs)
                .where(runs.c.run_id == run_id, runs.c.spec_digest != digest.hexdigest())
                .values(spec=text, spec_digest=digest.hexdigest())
            )


@dataclass(frozen=True)
class EventCatalog:
    """Event types the active journeys react to, and the keys their entries need."""

    types: frozenset[str]
    required: dict[str, tuple[tuple[str, str], ...]]
    """Per entry event type: (journey id, property) pairs an event of it must carry."""


def journey_catalog(engine: Engine) -> EventCatalog:
    types: set[str] = set()
    required: dict[str, list[tuple[str, str]]] = {}
    with engine.connect() as conn:
        rows = conn.execute(select(journeys.c.spec).where(journeys.c.status == ACTIVE)).all()
    for (text,) in rows:
        spec = JourneySpec.model_validate(json.loads(text))
        types.update(spec.event_types())
        if spec.entry.event is not None:
            required.setdefault(spec.entry.event.type, []).extend(
                (spec.journey_id, k) for k in spec.entry.keys
            )
    if types:
        types.add("unsubscribe")  # ends every live instance of the customer
    return EventCatalog(frozenset(types), {t: tuple(v) for t, v in required.items()})


def inbox_add(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Queue stored events for the orchestrator (inside the storing transaction)."""
    if rows:
        conn.execute(journey_inbox.insert(), list(rows))


class Inbox:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def take(self, limit: int) -> list[InboxEvent]:
        """The oldest queued events (not removed: :meth:`done` removes them)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(journey_inbox).order_by(journey_inbox.c.seq).limit(limit)
            ).all()
        return [
            InboxEvent(
                r.seq,
                r.event_id,
                r.type,
                r.customer_id,
                utc(r.occurred_at) or r.occurred_at,
                json.loads(r.properties) if r.properties else {},
            )
            for r in rows
        ]

    def size(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(journey_inbox)).scalar_one())


def inbox_done(conn: Connection, seqs: Sequence[int]) -> None:
    for i in range(0, len(seqs), 500):
        conn.execute(delete(journey_inbox).where(journey_inbox.c.seq.in_(list(seqs[i : i + 500]))))
