"""The journey chaos oracle: the world the chaos harness runs (customers, their events,
the journey) and an oracle that knows only the inputs, with the checks that compare what
was read back with it.

The world: ``customers`` profiles (every one reachable by email and SMS, consenting to
both), one ``cart_abandoned`` event each, a ``purchase`` of the same cart for about a
fifth of them and an ``open`` for about a third, all stored before the orchestrator
starts. The journey (``wait 1s -> email -> wait 1s -> opened? done : sms -> done``) has
a 10 % holdout, exits on a purchase of the entry's cart, and no quiet hours and no
frequency cap, so the oracle is a few set operations: a treated customer who did not buy
gets one email, and one text unless they opened; buyers and the holdout get nothing.

What the harness reads back is the outbox files (what was actually delivered), the
ledger, the step log, the instances and their memberships; :func:`check` compares them
with the oracle.
"""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import select

from sluice.contracts.journey import JourneySpec
from sluice.hashing import unit_hash
from sluice.store.schema import (
    deliveries,
    journey_instances,
    journey_members,
    journey_steps,
)

JOURNEY = "chaos-cart"
ZONES = ("UTC", "America/New_York", "Europe/Berlin", "Asia/Tokyo", "Australia/Sydney")
SEND_RUNS = {"email": f"j.{JOURNEY}.remind.0", "sms": f"j.{JOURNEY}.text.0"}
"""The run of each send step (``remind`` emails, ``text`` texts) for a first entry."""


@dataclass(frozen=True)
class World:
    spec: JourneySpec
    customers: tuple[str, ...]
    buyers: frozenset[str]
    openers: frozenset[str]
    outbox: Path

    def holdout(self) -> frozenset[str]:
        """The journey's holdout as its spec defines it: the customers whose hash under
        ``<salt>:holdout`` falls below ``holdout_pct`` percent."""
        u = unit_hash(list(self.customers), f"{self.spec.arm_salt}:holdout")
        cut = self.spec.holdout_pct / 100
        return frozenset(c for c, x in zip(self.customers, u, strict=True) if x < cut)

    def expected(self) -> set[tuple[str, str]]:
        """The oracle: (customer, channel) of every message that must be delivered, once."""
        treated = set(self.customers) - self.holdout() - self.buyers
        return {(c, "email") for c in treated} | {(c, "sms") for c in treated - self.openers}


def write_customers(path: Path, ids: list[str], rng: random.Random) -> None:
    n = len(ids)
    pq.write_table(
        pa.table(
            {
                "customer_id": ids,
                "email": [f"{c}@example.com" for c in ids],
                "phone": [f"+1555{i:07d}" for i in range(n)],
                "first_name": [rng.choice(["Ada", "Grace", "Alan", "Edsger"]) for _ in ids],
                "country": ["US"] * n,
                "time_zone": [rng.choice(ZONES) for _ in ids],
                "locale": ["en-US"] * n,
                "consent_email": [True] * n,
                "consent_sms": [True] * n,
                "consent_push": [False] * n,
            }
        ),
        path,
    )


def journey_spec(customers: Path, outbox: Path) -> JourneySpec:
    channel = {"transport": "outbox", "path": str(outbox)}
    offer = {"id": "loyalty-double-points"}
    return JourneySpec.model_validate(
        {
            "journey_id": JOURNEY,
            "name": "Cart abandonment under chaos",
            "customers": str(customers),
            "offers": "builtin:default",
            "channels": {"email": channel, "sms": channel},
            "gates": {"quiet_hours": None, "frequency_cap": None},
            "entry": {"event": {"type": "cart_abandoned"}, "keys": ["cart_id"]},
            "reentry": "once",
            "exit": [{"type": "purchase", "match": ["cart_id"]}],
            "conversion": {"type": "purchase"},
            "holdout_pct": 10,
            "steps": [
                {"id": "grace", "wait": {"for": "1s"}},
                {"id": "remind", "send": {"channel": "email", "offer": offer}},
                {"id": "pause", "wait": {"for": "1s"}},
                {"id": "opened", "branch": {"event": {"type": "open"}, "then": "done"}},
                {"id": "text", "send": {"channel": "sms", "offer": offer}},
                {"id": "done", "exit": {"reason": "done"}},
            ],
        }
    )


def build_world(work: Path, customers: int, rng: random.Random) -> World:
    ids = [f"cust-{i:05d}" for i in range(customers)]
    profiles = work / "customers.parquet"
    write_customers(profiles, ids, rng)
    outbox = work / "outbox"
    buyers = frozenset(c for c in ids if rng.random() < 0.2)
    openers = frozenset(c for c in ids if rng.random() < 0.3)
    return World(journey_spec(profiles, outbox), tuple(ids), buyers, openers, outbox)


def event_log(world: World, now: datetime) -> list[dict[str, Any]]:
    """Every event, in the order it is stored (and so applied).

    Buyers come first, each purchase right after its cart: inbox batches of ``BATCH``
    (an even number) then never part a cart from its purchase, so a buyer's instance is
    entered and exited in one transaction, before any of its steps can come due (else a
    purchase applied a round later than its cart could come after the email, which is
    right, but not what this oracle is about). Opens come last; the branch reads them
    from the event store, which holds them all before the orchestrator starts."""
    at = now.isoformat()

    def cart(c: str) -> dict[str, Any]:
        props = {"cart_id": f"cart-{c}", "value": 80}
        return {"event_id": f"abandon-{c}", "type": "cart_abandoned", "customer_id": c,
                "occurred_at": at, "properties": props}  # fmt: skip

    def purchase(c: str) -> dict[str, Any]:
        return {"event_id": f"buy-{c}", "type": "purchase", "customer_id": c,
                "occurred_at": at, "properties": {"cart_id": f"cart-{c}"}}  # fmt: skip

    out: list[dict[str, Any]] = []
    for c in world.customers:
        if c in world.buyers:
            out += [cart(c), purchase(c)]
    out += [cart(c) for c in world.customers if c not in world.buyers]
    later = (now + timedelta(milliseconds=5)).isoformat()
    out += [
        {"event_id": f"open-{c}", "type": "open", "customer_id": c, "occurred_at": later}
        for c in world.customers
        if c in world.openers
    ]
    return out


@dataclass(frozen=True)
class Snapshot:
    """What stood in the database at a kill: queued events, live instances, messages
    booked (emails and texts)."""

    inbox: int
    live: int
    emails: int
    texts: int

    @property
    def phase(self) -> str:
        """What the orchestrator was at when it was killed."""
        if not self.live:
            return "events" if self.inbox else "idle"
        sending = "texts" if self.texts else "emails" if self.emails else "waits"
        return f"events+{sending}" if self.inbox else sending


@dataclass
class ChaosReport:
    database: str
    customers: int
    kills: int
    jumps: int
    """Restarts whose clock was moved past every lease the killed process held."""
    snapshots: list[Snapshot]
    """What stood in the database just before each kill."""
    expected: int
    delivered: int
    seconds: float
    settle_seconds: float
    last_exit: int | None
    """The exit status of the last orchestrator, stopped with SIGTERM once nothing was live."""
    findings: dict[str, list[str]] = field(default_factory=dict)
    states: dict[str, int] = field(default_factory=dict)
    exits: dict[str, int] = field(default_factory=dict)

    def failures(self) -> dict[str, list[str]]:
        return {k: v for k, v in self.findings.items() if v}


# -- reading back -------------------------------------------------------------------------
def outbox_lines(world: World) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for channel, run_id in SEND_RUNS.items():
        path = world.outbox / run_id / f"{channel}.jsonl"
        if path.exists():
            out += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    stray = {p.parent.name for p in world.outbox.glob("*/*.jsonl")} - set(SEND_RUNS.values())
    assert not stray, f"outbox files of unexpected runs: {stray}"
    return out


def check(world: World, engine: Any, report: ChaosReport) -> None:
    """Everything read back, compared with the oracle (see :class:`ChaosReport`)."""
    expected = world.expected()
    holdout = world.holdout()
    lines = outbox_lines(world)
    got = Counter((m["customer_id"], m["channel"]) for m in lines)
    report.delivered = len(got)
    f: dict[str, list[str]] = {}
    f["outbox_duplicates"] = sorted(f"{c}/{ch} x{n}" for (c, ch), n in got.items() if n > 1)
    f["outbox_lost"] = sorted(f"{c}/{ch}" for c, ch in expected - set(got))
    f["outbox_unexpected"] = sorted(f"{c}/{ch}" for c, ch in set(got) - expected)
    keys = Counter(m["idempotency_key"] for m in lines)
    f["outbox_key_twice"] = sorted(k for k, n in keys.items() if n > 1)
    with engine.connect() as conn:
        ledger = conn.execute(
            select(deliveries.c.customer_id, deliveries.c.channel, deliveries.c.state,
                   deliveries.c.run_id, deliveries.c.idempotency_key)
            .where(deliveries.c.campaign_id == JOURNEY)
        ).all()  # fmt: skip
        instances = conn.execute(
            select(journey_instances.c.instance_id, journey_instances.c.customer_id,
                   journey_instances.c.state, journey_instances.c.exit_reason,
                   journey_instances.c.holdout, journey_instances.c.seq)
            .where(journey_instances.c.journey_id == JOURNEY)
        ).all()  # fmt: skip
        steps = conn.execute(
            select(journey_steps.c.instance_id, journey_steps.c.seq, journey_steps.c.step_id,
                   journey_steps.c.kind, journey_steps.c.outcome)
            .where(journey_steps.c.journey_id == JOURNEY)
            .order_by(journey_steps.c.instance_id, journey_steps.c.seq)
        ).all()  # fmt: skip
        members = conn.execute(
            select(journey_members.c.customer_id, journey_members.c.live_instance)
            .where(journey_members.c.journey_id == JOURNEY)
        ).all()  # fmt: skip
    rows = Counter((r.customer_id, r.channel) for r in ledger)
    f["ledger_duplicates"] = sorted(f"{c}/{ch} x{n}" for (c, ch), n in rows.items() if n > 1)
    state = {(r.customer_id, r.channel): r.state for r in ledger}
    f["ledger_not_sent"] = sorted(
        f"{c}/{ch}: {state.get((c, ch), 'no row')}"
        for c, ch in expected
        if state.get((c, ch)) != "sent"
    )
    f["ledger_unexpected"] = sorted(f"{c}/{ch}" for c, ch in set(state) - expected)
    f["ledger_wrong_run"] = sorted(
        f"{r.customer_id}/{r.channel}: {r.run_id}"
        for r in ledger
        if r.run_id != SEND_RUNS.get(r.channel)
    )
    sent_keys = {r.idempotency_key for r in ledger if r.state == "sent"}
    f["outbox_not_in_ledger"] = sorted(set(keys) - sent_keys)

    by_customer = {r.customer_id: r for r in instances}
    f["instances_missing"] = sorted(set(world.customers) - set(by_customer))
    entries = Counter(r.customer_id for r in instances)
    f["instances_twice"] = sorted(f"{c} x{n}" for c, n in entries.items() if n > 1)
    f["member_still_live"] = sorted(r.customer_id for r in members if r.live_instance)
    f["instances_not_ended"] = sorted(
        f"{r.customer_id}: {r.state}" for r in instances if r.state not in ("completed", "exited")
    )
    f["holdout_flag"] = sorted(
        r.customer_id for r in instances if bool(r.holdout) != (r.customer_id in holdout)
    )
    log: dict[str, list[Any]] = defaultdict(list)
    for s in steps:
        log[s.instance_id].append(s)
    pairs = Counter((s.instance_id, s.step_id) for s in steps)
    f["step_twice"] = sorted(f"{i}/{step} x{n}" for (i, step), n in pairs.items() if n > 1)
    f["step_log_gaps"] = sorted(
        r.customer_id
        for r in instances
        if [s.seq for s in log[r.instance_id]] != list(range(r.seq))
    )
    wrong_path: list[str] = []
    wrong_exit: list[str] = []
    for r in instances:
        want_path, want_exit = _path(world, r.customer_id, holdout)
        got_path = [(s.step_id, s.outcome) for s in log[r.instance_id]]
        if got_path != want_path:
            wrong_path.append(f"{r.customer_id}: {got_path} != {want_path}")
        if (r.state, r.exit_reason) != ("exited", want_exit):
            wrong_exit.append(f"{r.customer_id}: {r.state}/{r.exit_reason} != exited/{want_exit}")
    f["step_path"] = sorted(wrong_path)
    f["exit_reason"] = sorted(wrong_exit)
    report.findings = f
    report.states = dict(Counter(str(r.state) for r in instances))
    report.exits = dict(Counter(str(r.exit_reason) for r in instances))


def _path(world: World, c: str, holdout: frozenset[str]) -> tuple[list[tuple[str, str]], str]:
    """The step log the oracle expects of customer ``c``'s instance, and its exit reason."""
    if c in world.buyers:
        return [("grace", "event:purchase")], "event:purchase"
    sent = "holdout" if c in holdout else "sent"
    path = [("grace", "waited"), ("remind", sent), ("pause", "waited")]
    if c in world.openers:
        return [*path, ("opened", "then"), ("done", "done")], "done"
    return [*path, ("opened", "else"), ("text", sent), ("done", "done")], "done"
