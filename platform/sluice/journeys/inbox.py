"""Applying stored events to journeys: exits, awaited events, entries.

A batch of inbox events is applied in one transaction, in arrival order, and removed
from the inbox in that same transaction: each event is applied exactly once. For each
event, first the customer's live instances it ends (a journey's exit criteria, matched
against the instance's entry; an unsubscribe ends them all), then the waits it
completes, then the entries it makes.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sluice.contracts.feedback import EventType
from sluice.contracts.journey import JourneySpec
from sluice.journeys.entries import EntryRequest, Member, admit
from sluice.journeys.match import matches
from sluice.store.db import Engine
from sluice.store.instances import (
    EXITED,
    Instance,
    NewInstance,
    StepRecord,
    end,
    insert_instances,
    live_of,
    members,
    wake,
)
from sluice.store.journey_sends import withdraw
from sluice.store.journeys import Inbox, InboxEvent, inbox_done


@dataclass
class Applied:
    events: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    entered: list[str] = field(default_factory=list)


def _exit_reason(spec: JourneySpec, inst: Instance, e: InboxEvent) -> str | None:
    if e.type == EventType.UNSUBSCRIBE.value:
        return "unsubscribe"
    for m in spec.exit:
        if matches(m, e.type, e.properties, inst.entry):
            return f"event:{e.type}"
    return None


def _awaits(spec: JourneySpec, inst: Instance, e: InboxEvent) -> bool:
    if inst.step is None:
        return False
    wait = spec.step(inst.step).wait
    if wait is None or wait.event is None or wait.timeout is None or inst.due_at is None:
        return False
    arrived = inst.due_at - wait.timeout
    return e.occurred_at >= arrived and matches(wait.event, e.type, e.properties, inst.entry)


def apply_inbox(
    engine: Engine,
    specs: Mapping[str, JourneySpec],
    active: set[str],
    zone: Callable[[str], Callable[[str], str]],
    now: datetime,
    limit: int,
) -> Applied:
    """Apply up to ``limit`` inbox events (see the module docstring). ``zone(journey)``
    gives the journey's recipient time zone lookup."""
    out = Applied()
    events = Inbox(engine).take(limit)
    if not events:
        return out
    customers = [e.customer_id for e in events]
    entering = {jid: s for jid, s in specs.items() if jid in active and s.entry.event is not None}
    with engine.begin() as conn:
        live: dict[str, list[Instance]] = defaultdict(list)
        for inst in live_of(conn, customers):
            if inst.journey_id in specs:
                live[inst.customer_id].append(inst)
        standing: dict[str, dict[str, Member]] = {}
        for jid in entering:
            standing[jid] = {
                c: Member(int(r.entries), r.last_entered_at, r.live_instance is not None)
                for c, r in members(conn, jid, customers).items()
            }
        new: list[NewInstance] = []
        for e in events:
            if any(n.customer_id == e.customer_id for n in new):
                _flush(conn, new, live, now)  # this event may end or wake them
            _exits_and_waits(conn, specs, live, e, now, out)
            for jid, spec in entering.items():
                assert spec.entry.event is not None
                if not matches(spec.entry.event, e.type, e.properties):
                    continue
                member = standing[jid].get(e.customer_id)
                req = EntryRequest(e.customer_id, e.properties, e.occurred_at, e.event_id)
                made, why = admit(spec, req, member, zone(jid)(e.customer_id))
                if made is None:
                    out.counts[f"refused:{why}"] += 1
                    continue
                new.append(made)
                out.entered.append(made.instance_id)
                out.counts["entered"] += 1
                standing[jid][e.customer_id] = Member(made.generation + 1, made.entered_at, True)
        _flush(conn, new, live, now)
        inbox_done(conn, [e.seq for e in events])
    out.events = len(events)
    return out


def _flush(
    conn: Any, new: list[NewInstance], live: dict[str, list[Instance]], now: datetime
) -> None:
    """Insert the batch's new instances so far; later events of the batch see them."""
    insert_instances(conn, new, now)
    for n in new:
        live[n.customer_id].append(
            Instance(
                n.instance_id,
                n.journey_id,
                n.customer_id,
                n.generation,
                n.holdout,
                dict(n.entry),
                n.entered_at,
                n.step,
                0,
                n.due_at,
                None,
            )
        )
    new.clear()


def _exits_and_waits(
    conn: Any,
    specs: Mapping[str, JourneySpec],
    live: dict[str, list[Instance]],
    e: InboxEvent,
    now: datetime,
    out: Applied,
) -> None:
    keep: list[Instance] = []
    for inst in live.get(e.customer_id, []):
        spec = specs[inst.journey_id]
        reason = _exit_reason(spec, inst, e)
        if reason is not None:
            record = StepRecord(inst.step or "-", "exit", reason, {"event_id": e.event_id})
            if end(conn, inst, EXITED, reason, record, now):
                withdraw(conn, inst.journey_id, inst.customer_id, inst.generation, reason, now)
                out.counts[f"exited:{reason}"] += 1
            continue
        if _awaits(spec, inst, e) and wake(conn, inst.instance_id, inst.seq, e.event_id, now):
            out.counts["woken"] += 1
        keep.append(inst)
    live[e.customer_id] = keep
