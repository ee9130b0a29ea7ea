"""The journey chaos harness: a cart-abandonment journey run by a real orchestrator
process that is SIGKILLed again and again, and an oracle that knows only the inputs.

The world: ``customers`` profiles (every one reachable by email and SMS, consenting to
both), one ``cart_abandoned`` event each, a ``purchase`` of the same cart for about a
fifth of them and an ``open`` for about a third, all stored before the orchestrator
starts. The journey (``wait 1s -> email -> wait 1s -> opened? done : sms -> done``) has
a 10 % holdout, exits on a purchase of the entry's cart, and no quiet hours and no
frequency cap, so the oracle is a few set operations: a treated customer who did not buy
gets one email, and one text unless they opened; buyers and the holdout get nothing.

The orchestrator (``python -m sluice orchestrator run``) is killed at random moments,
0.2 to 2 s after it announced itself (2 to 5 s after two kills that found nothing
changed, so that the run moves on), and restarted each time; the restarts are forked
from a process that has imported Sluice already (:data:`ZYGOTE`). An instance a killed
orchestrator had claimed stays claimed until its lease (5 minutes) runs out, as do the
ledger rows of a delivery cut short (30 s); instead of waiting that long, about half of
the restarts start with Sluice's clock moved ahead past both leases
(``SLUICE_CLOCK_OFFSET``), as if the restart had come that much later; the others find
the killed orchestrator's claims still held. After the last kill one more orchestrator,
its clock ahead of every lease and started cold, runs until no instance is live.

What the harness reads back is the outbox files (what was actually delivered), the
ledger, the step log, the instances and their memberships; :func:`check` compares them
with the oracle.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import func, select

from sluice.channels.unsubscribe import Keyring
from sluice.contracts.journey import JourneySpec
from sluice.feedback.ingest import ingest
from sluice.hashing import unit_hash
from sluice.store.db import connect
from sluice.store.journeys import Journeys
from sluice.store.schema import (
    deliveries,
    journey_inbox,
    journey_instances,
    journey_members,
    journey_steps,
)

JOURNEY = "chaos-cart"
BATCH = 200
"""Instances claimed, and inbox events applied, per orchestrator round."""
ZONES = ("UTC", "America/New_York", "Europe/Berlin", "Asia/Tokyo", "Australia/Sydney")
LEASE_JUMP = timedelta(minutes=6)
"""Past the instance lease (5 minutes) and the delivery lease (30 s)."""
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


def child_env(home: Path, database_url: str, key: str) -> dict[str, str]:
    """The orchestrators' environment: this process's without its ``SLUICE_*``, and the
    test's home, database and unsubscribe key in their place."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    env.update(
        SLUICE_HOME=str(home),
        SLUICE_DATABASE_URL=database_url,
        SLUICE_UNSUBSCRIBE_SECRET=key,
        PYTHONUNBUFFERED="1",
    )
    env.pop("RAY_ADDRESS", None)
    return env


def clock(offset: timedelta) -> dict[str, str]:
    """The environment that moves an orchestrator's clock ``offset`` ahead."""
    return {"SLUICE_CLOCK_OFFSET": f"PT{int(offset.total_seconds())}S"}


ORCHESTRATOR = ["orchestrator", "run", "--poll", "0.05", "--batch", str(BATCH), "--no-stream"]
ZYGOTE = r"""
import json, os, runpy, sys
import sluice.cli.app, sluice.cli.orchestrator_cmd, sluice.orchestrator.loop
import sluice.registry.registry, sluice.coordinator.core, sluice.journeys.engine
args = sys.argv[1:]
print("zygote", flush=True)
for line in sys.stdin:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)  # reap the children killed so far
        except ChildProcessError:
            break
        if pid == 0:
            break
    order = json.loads(line)
    pid = os.fork()
    if pid == 0:
        log = os.open(order["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.environ.update(order["env"])
        sys.argv = ["sluice", *args]
        code = 0
        try:
            runpy.run_module("sluice", run_name="__main__", alter_sys=True)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)
    print(pid, flush=True)
"""
"""Starts ``python -m sluice <args>`` processes warm: it imports Sluice once (seconds on
a small machine) and forks a child per order, which runs the module exactly as
``python -m sluice`` does, with the order's environment and its output in the order's
log. Twenty restarts then cost twenty forks, not two minutes of imports."""


class Zygote:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", ZYGOTE, *ORCHESTRATOR],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
            )
        assert self._line() == "zygote", log.read_text()

    def _line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().decode().strip()

    def start(self, env: dict[str, str], log: Path) -> Child:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"env": env, "log": str(log)}).encode() + b"\n")
        self.proc.stdin.flush()
        return Child(int(self._line()), log)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def _running(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie, killed and not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


@dataclass
class Child:
    """An orchestrator the zygote forked."""

    pid: int
    log: Path

    def ready(self, timeout: float) -> bool:
        """Whether it announced itself (its engine built) within ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log.exists() and b"orchestrator: database" in self.log.read_bytes():
                return True
            if not _running(self.pid):
                return False
            time.sleep(0.01)
        return False

    def tail(self) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"{self.log}:\n{text[-4000:]}"

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _running(self.pid) and time.monotonic() < deadline:
            time.sleep(0.005)
        assert not _running(self.pid), f"orchestrator {self.pid} survived SIGKILL"


def live_count(engine: Any) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(journey_instances)
                .where(journey_instances.c.state == "live")
            ).scalar_one()
        )


def inbox_size(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(journey_inbox)).scalar_one())


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


def snapshot(engine: Any) -> Snapshot:
    with engine.connect() as conn:
        sent = dict(
            conn.execute(
                select(deliveries.c.channel, func.count())
                .where(deliveries.c.campaign_id == JOURNEY)
                .group_by(deliveries.c.channel)
            ).all()
        )
    return Snapshot(
        inbox_size(engine), live_count(engine), sent.get("email", 0), sent.get("sms", 0)
    )


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


def run_chaos(
    work: Path, database_url: str, customers: int, kills: int, seed: int, deadline_s: float
) -> tuple[World, ChaosReport]:
    started = time.monotonic()
    rng = random.Random(seed)
    work.mkdir(parents=True, exist_ok=True)
    home = work / "home"
    world = build_world(work, customers, rng)
    key = secrets.token_hex(32)
    engine = connect(database_url)
    Journeys(engine).deploy(world.spec.journey_id, world.spec.public(), "chaos-test")
    now = datetime.now(UTC)
    events = event_log(world, now)
    # Customer events and outcome events (the opens) in separate calls: one batch that
    # mixes them fails to store (see the test module's docstring).
    for kind in (False, True):
        part = [e for e in events if (e["type"] == "open") is kind]
        result = ingest(engine, part, "chaos-test", Keyring.of(key))
        assert not result.rejected and result.accepted == len(part), result
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    env = child_env(home, database_url, key)
    offset = timedelta(0)
    snapshots: list[Snapshot] = []
    jumps = 0
    zygote = Zygote(env, logs / "zygote.log")
    child: Child | None = None
    try:
        for k in range(kills):
            child = zygote.start(clock(offset), logs / f"orchestrator-{k:02d}.log")
            assert child.ready(60), child.tail()
            # A random moment 0.2 to 2 s in; after two kills in a row that found nothing
            # changed (a slow first batch, rolled back each time), 2 to 5 s, so that the
            # run moves on and the kills spread over its phases.
            stalled = len(snapshots) >= 2 and snapshots[-1] == snapshots[-2]
            time.sleep(rng.uniform(2.0, 5.0) if stalled else rng.uniform(0.2, 2.0))
            snapshots.append(snapshot(engine))
            child.kill()
            # About half of the restarts come "later": past every lease the killed
            # orchestrator held (the others find its claims still held).
            if rng.random() < 0.5:
                offset += LEASE_JUMP
                jumps += 1
    finally:
        if child is not None:
            child.kill()
        zygote.close()
    # The last orchestrator, started cold as `python -m sluice orchestrator run` with its
    # clock past every lease, runs until nothing is live.
    offset += LEASE_JUMP
    settle = time.monotonic()
    log = logs / "orchestrator-last.log"
    with log.open("wb") as out:
        last = subprocess.Popen(
            [sys.executable, "-m", "sluice", *ORCHESTRATOR],
            env={**env, **clock(offset)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        # Announced (its signal handlers set) before anything else is judged.
        assert Child(last.pid, log).ready(120), Child(last.pid, log).tail()
        end = time.monotonic() + deadline_s
        while time.monotonic() < end and (live_count(engine) or inbox_size(engine)):
            time.sleep(0.25)
        last.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            last.wait(60)
    finally:
        if last.poll() is None:
            last.kill()
            last.wait(10)
    report = ChaosReport(
        database=engine.dialect.name,
        customers=customers,
        kills=kills,
        jumps=jumps,
        snapshots=snapshots,
        expected=len(world.expected()),
        delivered=0,
        seconds=round(time.monotonic() - started, 1),
        settle_seconds=round(time.monotonic() - settle, 1),
        last_exit=last.returncode,
    )
    check(world, engine, report)
    return world, report


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
