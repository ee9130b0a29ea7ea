"""The step machine: from the step an instance is due at, take steps until it must wait.

Pure decisions, no I/O: :func:`walk` takes the instance, what is known about the
customer (:class:`Facts`) and the time, and fills a :class:`~sluice.store.instances.Move`
with the steps taken. It stops at an armed wait (due when the wait ends), at a send
(the engine hands sends to the delivery pipeline in batches, then walks on from the
step after it), or at the end (completed, or exited by an exit step).

An instance's ``step`` and ``due_at`` always mean "at ``due_at``, complete ``step``": a
wait is armed when the instance arrives at it and completed when it is due.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sluice.contracts.journey import JourneySpec, ScoreTest, Step, Wait
from sluice.hashing import unit_hash
from sluice.journeys.match import holds, matches
from sluice.store.instances import COMPLETED, EXITED, Instance, Move, StepRecord


@dataclass(frozen=True)
class SeenEvent:
    type: str
    occurred_at: datetime
    properties: Mapping[str, Any]


@dataclass
class Facts:
    """What branches may look at, for the instances of one batch."""

    attributes: Callable[[str], Mapping[str, Any]]
    zone: Callable[[str], str]
    events: Mapping[str, Sequence[SeenEvent]] = field(default_factory=dict)
    """Events since entry, by customer (prefetched for the batch)."""
    scores: Mapping[str, float] = field(default_factory=dict)
    """Model scores by customer (prefetched when a score branch is ahead)."""


def arm(wait: Wait, base: datetime, zone: str) -> datetime:
    """When a wait that starts at ``base`` ends (the timeout, for a wait for an event)."""
    if wait.for_ is not None:
        return base + wait.for_
    if wait.timeout is not None:
        return base + wait.timeout
    assert wait.until is not None
    tz = ZoneInfo(zone)
    local = base.astimezone(tz)
    at = local.replace(
        hour=wait.until.hour, minute=wait.until.minute, second=wait.until.second, microsecond=0
    )
    if at <= local:
        at = (local + timedelta(days=1)).replace(
            hour=wait.until.hour, minute=wait.until.minute, second=wait.until.second
        )
    return at.astimezone(base.tzinfo)


def due_on_arrival(spec: JourneySpec, step_id: str, base: datetime, zone: str) -> datetime:
    step = spec.step(step_id)
    return arm(step.wait, base, zone) if step.wait is not None else base


def _branch(spec: JourneySpec, step: Step, inst: Instance, facts: Facts, now: datetime) -> str:
    b = step.branch
    assert b is not None
    if b.split is not None:
        u = float(unit_hash([inst.instance_id], f"{spec.arm_salt}:{step.id}")[0]) * 100
        edge = 0.0
        for p in b.split:
            edge += p.pct
            if u < edge:
                return f"split:{p.next}"
        return f"split:{b.split[-1].next}"
    if b.event is not None:
        m = b.event
        held = any(
            inst.entered_at <= e.occurred_at <= now and matches(m, e.type, e.properties, inst.entry)
            for e in facts.events.get(inst.customer_id, ())
        )
    elif b.attribute is not None:
        attrs = {
            **facts.attributes(inst.customer_id),
            **{f"entry.{k}": v for k, v in inst.entry.items()},
        }
        held = holds(b.attribute, attrs)
    else:
        assert isinstance(b.score, ScoreTest)
        score = facts.scores.get(inst.customer_id)
        if score is None:
            return "no_score"
        held = score >= b.score.above
    return "then" if held else "else"


def _branch_target(spec: JourneySpec, step: Step, outcome: str) -> str | None:
    b = step.branch
    assert b is not None
    default = step.next or spec.following(step.id)
    if outcome.startswith("split:"):
        return outcome.removeprefix("split:")
    if outcome == "then":
        return b.then or default
    return b.else_ or default


def _next(spec: JourneySpec, step: Step) -> str | None:
    return step.next or spec.following(step.id)


def walk(
    spec: JourneySpec,
    move: Move,
    start: str | None,
    facts: Facts,
    now: datetime,
    base: datetime,
    completing: bool,
) -> bool:
    """Take steps from ``start``; ``completing``: ``start`` is the due step the instance
    was claimed at (a wait that ends now). ``base`` is the instance's clock (a deferred
    send moves it). Returns True when the instance stopped at a send step."""
    inst = move.instance
    step_id = start
    for _ in range(4 * len(spec.steps) + 4):
        if step_id is None:
            move.state, move.step, move.due_at = COMPLETED, None, None
            move.exit_reason = None
            return False
        step = spec.step(step_id)
        if step.wait is not None:
            if not completing:
                move.step = step_id
                move.due_at = arm(step.wait, base, facts.zone(inst.customer_id))
                return False
            w = step.wait
            if w.event is not None:
                woke = inst.woken_by is not None
                outcome = "event" if woke else "timeout"
                target = (w.on_event if woke else w.on_timeout) or _next(spec, step)
                detail = {"event_id": inst.woken_by} if woke else None
            else:
                outcome, target, detail = "waited", _next(spec, step), None
            move.records.append(StepRecord(step.id, "wait", outcome, detail))
            base = max(base, now)
            step_id, completing = target, False
            continue
        completing = False
        if step.branch is not None:
            outcome = _branch(spec, step, inst, facts, now)
            move.records.append(StepRecord(step.id, "branch", outcome))
            step_id = _branch_target(spec, step, outcome)
            continue
        if step.send is not None:
            move.step, move.due_at = step_id, base
            return True
        assert step.exit is not None
        move.records.append(StepRecord(step.id, "exit", step.exit.reason))
        move.state, move.step, move.due_at = EXITED, None, None
        move.exit_reason = step.exit.reason
        return False
    raise RuntimeError(f"journey {spec.journey_id}: step walk did not end")  # validated away


def replays(move: Move) -> bool:
    """Whether the steps of ``move`` decide the same when taken again later: waits that
    ended by time and random splits (by the instance's hash), nothing read from events,
    profiles or scores. Such a walk to a send step need not be committed before the
    send: after a crash, the instance is claimed where it stood and walks the same way
    to the same send, which the pipeline finds already booked."""
    return all(
        (r.kind == "wait" and r.outcome == "waited")
        or (r.kind == "branch" and r.outcome.startswith("split:"))
        for r in move.records
    )
