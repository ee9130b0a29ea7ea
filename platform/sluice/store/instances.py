"""Journey instances: entered once per entry, claimed when due, moved on exactly once.

An instance is ``live`` at a ``step`` due at ``due_at`` until it ``completed`` or
``exited``. The orchestrator claims due instances with a lease (``owner``,
``lease_until``), decides what each does next, and commits every move as a
compare-and-set on ``seq`` (the number of steps taken) that writes the step log row
(instance, seq) in the same transaction: a move is applied once or not at all, and a
crash between claim and commit only means the lease runs out and the step is decided
again (claims and commits: :mod:`sluice.store.instance_claims`). Exits apply to live
instances whatever their lease.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.engine import Connection

from sluice.store.db import utc
from sluice.store.dialect import upsert_insert
from sluice.store.schema import journey_instances, journey_members, journey_steps

LIVE, COMPLETED, EXITED = "live", "completed", "exited"


@dataclass(frozen=True)
class Instance:
    instance_id: str
    journey_id: str
    customer_id: str
    generation: int
    holdout: bool
    entry: dict[str, Any]
    entered_at: datetime
    step: str | None
    seq: int
    due_at: datetime | None
    woken_by: str | None


@dataclass(frozen=True)
class NewInstance:
    instance_id: str
    journey_id: str
    customer_id: str
    generation: int
    holdout: bool
    entry: dict[str, Any]
    entry_event_id: str | None
    entered_at: datetime
    step: str
    due_at: datetime


@dataclass(frozen=True)
class StepRecord:
    step_id: str
    kind: str
    outcome: str
    detail: dict[str, Any] | None = None


@dataclass
class Move:
    """What happens to one claimed instance: the steps it took, where it stands now."""

    instance: Instance
    records: list[StepRecord] = field(default_factory=list)
    state: str = LIVE
    step: str | None = None
    due_at: datetime | None = None
    exit_reason: str | None = None


def instance_of(r: Any) -> Instance:
    return Instance(
        r.instance_id,
        r.journey_id,
        r.customer_id,
        r.generation,
        bool(r.holdout),
        json.loads(r.entry),
        utc(r.entered_at) or r.entered_at,
        r.step,
        r.seq,
        utc(r.due_at),
        r.woken_by,
    )


@dataclass(frozen=True)
class Membership:
    entries: int
    last_entered_at: datetime | None
    live_instance: str | None


def members(
    conn: Connection, journey_id: str, customer_ids: Sequence[str]
) -> dict[str, Membership]:
    """Membership (entries, last entry, live instance) by customer."""
    out: dict[str, Membership] = {}
    ids = list(dict.fromkeys(customer_ids))
    for i in range(0, len(ids), 500):
        rows = conn.execute(
            select(journey_members).where(
                and_(
                    journey_members.c.journey_id == journey_id,
                    journey_members.c.customer_id.in_(ids[i : i + 500]),
                )
            )
        )
        out.update(
            {
                r.customer_id: Membership(int(r.entries), utc(r.last_entered_at), r.live_instance)
                for r in rows
            }
        )
    return out


def insert_instances(conn: Connection, new: Sequence[NewInstance], now: datetime) -> None:
    """Create instances and their membership (the caller checked the re-entry rule)."""
    if not new:
        return
    conn.execute(
        journey_instances.insert(),
        [
            {
                "instance_id": n.instance_id,
                "journey_id": n.journey_id,
                "customer_id": n.customer_id,
                "generation": n.generation,
                "holdout": n.holdout,
                "entry": json.dumps(n.entry, default=str),
                "entry_event_id": n.entry_event_id,
                "entered_at": n.entered_at,
                "state": LIVE,
                "step": n.step,
                "seq": 0,
                "due_at": n.due_at,
                "updated_at": now,
            }
            for n in new
        ],
    )
    stmt = upsert_insert(conn)(journey_members)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["journey_id", "customer_id"],
            set_={
                "entries": stmt.excluded.entries,
                "last_entered_at": stmt.excluded.last_entered_at,
                "live_instance": stmt.excluded.live_instance,
            },
        ),
        [
            {
                "journey_id": n.journey_id,
                "customer_id": n.customer_id,
                "entries": n.generation + 1,
                "last_entered_at": n.entered_at,
                "live_instance": n.instance_id,
            }
            for n in new
        ],
    )


def live_of(conn: Connection, customer_ids: Sequence[str]) -> list[Instance]:
    """Live instances of these customers, in every journey."""
    out: list[Instance] = []
    ids = list(dict.fromkeys(customer_ids))
    for i in range(0, len(ids), 500):
        rows = conn.execute(
            select(journey_instances).where(
                and_(
                    journey_instances.c.customer_id.in_(ids[i : i + 500]),
                    journey_instances.c.state == LIVE,
                )
            )
        )
        out += [instance_of(r) for r in rows]
    return out


def wake(conn: Connection, instance_id: str, seq: int, event_id: str, now: datetime) -> bool:
    """An awaited event came: the instance is due now (once)."""
    done = conn.execute(
        update(journey_instances)
        .where(
            and_(
                journey_instances.c.instance_id == instance_id,
                journey_instances.c.seq == seq,
                journey_instances.c.state == LIVE,
                journey_instances.c.woken_by.is_(None),
            )
        )
        .values(woken_by=event_id, due_at=now, updated_at=now)
    )
    return bool(done.rowcount == 1)


def end(
    conn: Connection, inst: Instance, state: str, reason: str, record: StepRecord, now: datetime
) -> bool:
    """End a live instance (exit or completion) with its last step record."""
    done = conn.execute(
        update(journey_instances)
        .where(
            and_(
                journey_instances.c.instance_id == inst.instance_id,
                journey_instances.c.state == LIVE,
            )
        )
        .values(
            state=state,
            step=None,
            due_at=None,
            exit_reason=reason,
            owner=None,
            lease_until=None,
            seq=journey_instances.c.seq + 1,
            updated_at=now,
        )
    )
    if done.rowcount != 1:
        return False
    seq = conn.execute(
        select(journey_instances.c.seq).where(journey_instances.c.instance_id == inst.instance_id)
    ).scalar_one()
    _log(conn, inst, [(seq - 1, record)], now)
    _release_member(conn, inst)
    return True


def _release_member(conn: Connection, inst: Instance) -> None:
    conn.execute(
        update(journey_members)
        .where(
            and_(
                journey_members.c.journey_id == inst.journey_id,
                journey_members.c.customer_id == inst.customer_id,
                journey_members.c.live_instance == inst.instance_id,
            )
        )
        .values(live_instance=None)
    )


def step_rows(
    inst: Instance, records: Sequence[tuple[int, StepRecord]], now: datetime
) -> list[dict[str, Any]]:
    return [
        {
            "instance_id": inst.instance_id,
            "seq": seq,
            "journey_id": inst.journey_id,
            "step_id": r.step_id,
            "kind": r.kind,
            "outcome": r.outcome,
            "holdout": inst.holdout,
            "detail": json.dumps(r.detail, default=str) if r.detail else None,
            "at": now,
        }
        for seq, r in records
    ]


def _log(
    conn: Connection, inst: Instance, records: Sequence[tuple[int, StepRecord]], now: datetime
) -> None:
    if records:
        conn.execute(journey_steps.insert(), step_rows(inst, records, now))


__all__ = [
    "COMPLETED",
    "EXITED",
    "LIVE",
    "Instance",
    "Move",
    "NewInstance",
    "StepRecord",
    "end",
    "insert_instances",
    "instance_of",
    "live_of",
    "members",
    "step_rows",
    "wake",
]
