"""A cart-abandonment journey end to end, as production runs it: events on a Redis
stream, the orchestrator as its own process, email through real SMTP to the mail sink,
text messages to an outbox, every step recorded in the database.

The journey waits seconds instead of hours. Buyers of their cart leave before the
reminder; a purchase of another cart does not end the instance; the holdout is sent
nothing; a second abandonment while an instance is live is refused; a recipient in
quiet hours has the reminder deferred (not sent); an opened reminder skips the text;
events the journeys cannot take are parked on ``{stream}:parked`` with their reason.

Needs the Redis server at ``SLUICE_TEST_REDIS_URL`` (default 127.0.0.1:6379): skipped
where none is reachable, except under ``CI=true``, where that is a failure. No Ray.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis
import yaml
from sqlalchemy import Engine, create_engine, func, select

from sluice.devtools.mailsink import MailSink
from sluice.feedback.stream import publish
from sluice.journeys.entries import in_holdout
from sluice.journeys.spec import load_journey
from sluice.store.schema import (
    deliveries,
    events,
    journey_inbox,
    journey_instances,
    journey_members,
    journey_steps,
)

REDIS_URL = os.environ.get("SLUICE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ROOT = Path(__file__).parents[2]
JOURNEY = "cart-e2e"
GRACE_S, LATER_S = 4, 5
"""The journey's two waits: abandonment to reminder, reminder to text."""
DEADLINE_S = 60.0
QUIET = ("21:00", "08:00")
NAMES = ("Ada", "Bruno", "Chiara", "Dmitri", "Elif", "Farah", "Gustav", "Hana", "Ines", "Jonas")
GROUP = "sluice-orchestrator"
T = TypeVar("T")


# -- fixtures -------------------------------------------------------------------------------
@pytest.fixture
def client() -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(REDIS_URL, decode_responses=True, socket_connect_timeout=3)
    try:
        c.ping()
    except redis.ConnectionError as exc:
        if os.environ.get("CI") == "true":  # CI has the server: its absence is a failure
            pytest.fail(f"Redis not reachable at {REDIS_URL} under CI: {exc}")
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
    yield c
    c.close()


@pytest.fixture
def stream(client: redis.Redis) -> Iterator[str]:
    name = f"sluice:test:journeys:{uuid.uuid4().hex}"
    yield name
    client.delete(name, f"{name}:parked")


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[MailSink]:
    s = MailSink(tmp_path / "mail").start()
    yield s
    s.stop()


# -- the cast -------------------------------------------------------------------------------
def zone_at(local_hour: int, now: datetime) -> str:
    """A fixed-offset IANA zone in which it is now ``local_hour`` o'clock (give or take
    the minutes of ``now``)."""
    offset = (local_hour - now.hour) % 24
    if offset > 12:
        offset -= 24  # Etc/GMT-14 .. Etc/GMT+12 cover UTC-12 .. UTC+14
    if offset == 0:
        return "Etc/GMT"
    return f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"  # POSIX signs: GMT-3 is UTC+3


@dataclass
class Cast:
    """Who does what in the scenario (customer ids by role)."""

    holdout: list[str] = field(default_factory=list)
    buyers: list[str] = field(default_factory=list)
    other_cart: str = ""
    night: list[str] = field(default_factory=list)
    opener: str = ""
    no_sms_consent: str = ""
    reenters: str = ""
    low_value: str = ""
    regular: list[str] = field(default_factory=list)

    @property
    def entrants(self) -> list[str]:
        return [
            *self.holdout,
            *self.buyers,
            self.other_cart,
            *self.night,
            self.opener,
            self.no_sms_consent,
            self.reenters,
            *self.regular,
        ]

    @property
    def emailed(self) -> set[str]:
        """Treated, not bought, in daytime: the reminder goes out now."""
        return {self.other_cart, self.opener, self.no_sms_consent, self.reenters, *self.regular}

    @property
    def texted(self) -> set[str]:
        return self.emailed - {self.opener, self.no_sms_consent}


def cast_of(ids: list[str], holdout: Callable[[str], bool]) -> Cast:
    c = Cast(holdout=[i for i in ids if holdout(i)])
    rest = [i for i in ids if not holdout(i)]
    c.buyers, rest = rest[:8], rest[8:]
    c.other_cart, c.opener, c.no_sms_consent, c.reenters, c.low_value, *rest = rest
    c.night, c.regular = rest[:2], rest[2:]
    return c


def write_customers(path: Path, cast: Cast, ids: list[str], now: datetime) -> dict[str, dict]:
    day, night = zone_at(13, now), zone_at(2, now)
    rows = [
        {
            "customer_id": cid,
            "email": f"{cid}@mail.example.com",
            "phone": f"+1555{n:07d}",
            "first_name": NAMES[n % len(NAMES)],
            "country": "US",
            "time_zone": night if cid in cast.night else day,
            "locale": "en-US",
            "consent_email": True,
            "consent_sms": cid != cast.no_sms_consent,
            "consent_push": False,
        }
        for n, cid in enumerate(ids)
    ]
    pq.write_table(pa.Table.from_pylist(rows), path)
    return {r["customer_id"]: r for r in rows}


def write_spec(path: Path, customers: Path, sink: MailSink, outbox: Path) -> Path:
    spec: dict[str, Any] = {
        "journey_id": JOURNEY,
        "name": "Cart abandonment (e2e)",
        "brand": "sluice-outdoors",
        "customers": str(customers),
        "offers": "builtin:default",
        "channels": {
            "email": {
                "transport": "smtp",
                "host": "127.0.0.1",
                "port": sink.smtp_port,
                "reconcile_url": sink.status_url,
                "allow_hosts": ["127.0.0.1"],
                "from_address": "offers@shop.example.com",
            },
            "sms": {"transport": "outbox", "path": str(outbox)},
        },
        "gates": {
            "frequency_cap": {"per_day": 3},
            "quiet_hours": {"start": QUIET[0], "end": QUIET[1]},
        },
        "entry": {
            "event": {
                "type": "cart_abandoned",
                "where": [{"field": "value", "op": "gte", "value": 20}],
            },
            "keys": ["cart_id"],
        },
        # One live instance at a time, and nothing else: a refused second entry can
        # only be the live instance's doing (cart-abandonment.yaml says {after: 1d}).
        "reentry": "always",
        "exit": [{"type": "purchase", "match": ["cart_id"]}],
        "conversion": {"type": "purchase"},
        "holdout_pct": 10,
        "steps": [
            {"id": "grace", "wait": {"for": f"{GRACE_S}s"}},
            {
                "id": "remind",
                "send": {"channel": "email", "offer": {"id": "loyalty-double-points"}},
            },
            {"id": "later", "wait": {"for": f"{LATER_S}s"}},
            {"id": "opened", "branch": {"event": {"type": "open"}, "then": "done"}},
            {"id": "text", "send": {"channel": "sms", "offer": {"id": "loyalty-double-points"}}},
            {"id": "done", "exit": {"reason": "done"}},
        ],
    }
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


# -- helpers --------------------------------------------------------------------------------
def sluice(env: dict[str, str], *args: str) -> dict[str, Any]:
    """Run the CLI in a fresh process; the JSON its stdout ends with."""
    done = subprocess.run(
        [sys.executable, "-m", "sluice", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, f"sluice {' '.join(args)}: {done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def wait_for(
    what: str,
    probe: Callable[[], T],
    done: Callable[[T], bool],
    deadline: float,
    check: Callable[[], None] | None = None,
) -> T:
    """Poll ``probe`` until ``done`` holds of its value (``check`` runs on every poll:
    the orchestrator still alive); fails naming ``what`` and the last value."""
    while True:
        if check is not None:
            check()
        value = probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; last: {value!r}"[:3000])
        time.sleep(0.1)


def group_exists(client: redis.Redis, stream: str) -> bool:
    try:
        return any(g["name"] == GROUP for g in client.xinfo_groups(stream))
    except redis.ResponseError:  # no such stream yet
        return False


def stop(proc: subprocess.Popen[bytes], stdout: Path) -> None:
    """SIGTERM, then wait for the orchestrator's closing totals line. The process itself
    lingers until ``--max-seconds`` has passed (its timer thread is not a daemon), so once
    it has printed its totals it is killed rather than waited for."""
    if proc.poll() is not None:
        return
    proc.terminate()
    end = time.monotonic() + 20
    while proc.poll() is None and time.monotonic() < end:
        lines = stdout.read_text().strip().splitlines() if stdout.exists() else []
        if lines and lines[-1].startswith("{"):
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                break
        time.sleep(0.1)
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


def utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def event(type_: str, customer: str, at: datetime, **properties: Any) -> dict[str, Any]:
    """A customer event, as a shop's backend publishes it."""
    return {
        "event_id": f"{type_}-{customer}-{uuid.uuid4().hex[:8]}",
        "type": type_,
        "customer_id": customer,
        "occurred_at": at.isoformat(),
        "properties": properties,
    }


def mails_by_customer(sink: MailSink, run_id: str) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for m in sink.store.messages():
        if m["X-Sluice-Run"] == run_id:
            out.setdefault(str(m["X-Sluice-Customer"]), []).append(m)
    return out


def outbox_lines(outbox: Path, run_id: str) -> list[dict[str, Any]]:
    path = outbox / run_id / "sms.jsonl"
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def standing(db: Engine) -> dict[str, tuple[str, str | None]]:
    """Each customer's latest instance: (state, step)."""
    return {c: (v[-1].state, v[-1].step) for c, v in instance_rows(db).items()}


def instance_rows(db: Engine) -> dict[str, list[Any]]:
    with db.connect() as conn:
        rows = conn.execute(
            select(journey_instances).where(journey_instances.c.journey_id == JOURNEY)
        ).all()
    out: dict[str, list[Any]] = {}
    for r in rows:
        out.setdefault(r.customer_id, []).append(r)
    return out


# -- the scenario ---------------------------------------------------------------------------
def test_cart_abandonment_journey_runs_end_to_end(
    tmp_path: Path, client: redis.Redis, stream: str, sink: MailSink
) -> None:
    now = datetime.now(UTC)
    home, outbox = tmp_path / "home", tmp_path / "outbox"
    database = f"sqlite:///{tmp_path / 'sluice.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLUICE_", "RAY_"))}
    env |= {
        "SLUICE_HOME": str(home),
        "SLUICE_DATABASE_URL": database,
        "SLUICE_REDIS_URL": REDIS_URL,
        "SLUICE_EVENTS_STREAM": stream,
        "SLUICE_UNSUBSCRIBE_SECRET": secrets.token_urlsafe(32),
        "COLUMNS": "120",
    }

    # The customers: the holdout is the journey's hash of the id; the rest get roles.
    ids = [f"cust-{n:03d}" for n in range(40)]
    spec_path = tmp_path / "journey.yaml"
    customers = tmp_path / "customers.parquet"
    write_spec(spec_path, customers, sink, outbox)
    spec = load_journey(spec_path, home)
    cast = cast_of(ids, lambda c: in_holdout(spec, c))
    assert len(cast.holdout) >= 2 and len(cast.regular) >= 10, cast
    profiles = write_customers(customers, cast, ids, now)
    for cid in cast.night:  # it is night there now, and will be for the whole test
        local = now.astimezone(ZoneInfo(profiles[cid]["time_zone"]))
        assert local.hour in (1, 2, 3), local
    remind_run, text_run = spec.step_run_id("remind", 0), spec.step_run_id("text", 0)

    assert sluice(env, "journey", "deploy", str(spec_path)) == {
        "journey_id": JOURNEY,
        "status": "active",
    }

    log = (tmp_path / "orchestrator.out").open("w"), (tmp_path / "orchestrator.err").open("w")
    orchestrator = subprocess.Popen(
        [
            *(sys.executable, "-m", "sluice", "orchestrator", "run"),
            *("--poll", "0.05", "--max-seconds", "85"),
        ],
        stdout=log[0],
        stderr=log[1],
        env=env,
        cwd=ROOT,
    )

    def alive() -> None:
        if orchestrator.poll() is not None:
            err = (tmp_path / "orchestrator.err").read_text()[-3000:]
            pytest.fail(f"the orchestrator exited ({orchestrator.returncode}): {err}")

    db = create_engine(database)
    try:
        # Ready when its consumer group is on the stream (it starts the process, loads
        # the journey, opens the database; then every poll reads the stream).
        wait_for(
            "the orchestrator's consumer group",
            lambda: group_exists(client, stream),
            bool,
            time.monotonic() + 45,
            alive,
        )
        deadline = time.monotonic() + DEADLINE_S
        # Abandoned carts for everyone (one of them too cheap to enter), buyers' orders
        # of the same cart, another cart's order, and two events no journey can take.
        t0 = datetime.now(UTC)
        carts = {cid: f"cart-{cid}" for cid in ids}
        abandoned = [
            event(
                "cart_abandoned",
                cid,
                t0,
                cart_id=carts[cid],
                value=10 if cid == cast.low_value else 20 + n,
            )
            for n, cid in enumerate(ids)
        ]
        unknown = event("wishlist_added", cast.regular[0], t0, item="tent")
        keyless = event("cart_abandoned", cast.regular[1], t0, value=55)
        publish(client, stream, [*abandoned, unknown, keyless])
        t1 = t0 + timedelta(milliseconds=500)
        orders = [event("purchase", cid, t1, cart_id=carts[cid]) for cid in cast.buyers]
        orders.append(event("purchase", cast.other_cart, t1, cart_id="cart-bought-earlier"))
        publish(client, stream, orders)

        entrants = set(cast.entrants)
        wait_for(
            "every entry to be applied",
            lambda: standing(db),
            lambda now: set(now) == entrants,
            deadline,
            alive,
        )
        # While their instance is live, a second abandonment (another cart) is refused.
        again = event(
            "cart_abandoned", cast.reenters, datetime.now(UTC), cart_id="cart-2", value=80
        )
        publish(client, stream, [again])

        # The reminder step, for every instance its grace wait did not end. The opener
        # opens their email as soon as it arrives, before the text is due.
        opened = False

        def past_grace() -> dict[str, tuple[str, str | None]]:
            nonlocal opened
            if not opened and cast.opener in mails_by_customer(sink, remind_run):
                publish(
                    client,
                    stream,
                    [
                        {
                            "event_id": f"open-{cast.opener}",
                            "type": "open",
                            "customer_id": cast.opener,
                            "occurred_at": datetime.now(UTC).isoformat(),
                            "run_id": remind_run,
                            "channel": "email",
                        }
                    ],
                )
                opened = True
            return standing(db)

        wait_for(
            "every instance past its grace wait, and the opener's email",
            past_grace,
            lambda now: opened and ("live", "grace") not in now.values(),
            deadline,
            alive,
        )

        # Then every daytime instance runs to its end (sends are delivered before their
        # step is recorded); the night's wait for the deferred reminder to go out.
        daytime = entrants - set(cast.night)
        wait_for(
            "every daytime instance to end",
            lambda: standing(db),
            lambda now: all(now[c][0] != "live" for c in daytime),
            deadline,
            alive,
        )
        time.sleep(0.5)  # anything else would have arrived by now
        alive()
    finally:
        stop(orchestrator, tmp_path / "orchestrator.out")
        for f in log:
            f.close()
    out = (tmp_path / "orchestrator.out").read_text().strip().splitlines()
    assert out and out[-1].startswith("{"), (tmp_path / "orchestrator.err").read_text()[-3000:]
    totals = json.loads(out[-1])
    assert totals["sends"] > 0 and totals["events"] > 0, totals
    checked_at = datetime.now(UTC)

    # Email: exactly one per reminded customer, to their address, each attempted once.
    mails = mails_by_customer(sink, remind_run)
    assert set(mails) == cast.emailed
    for cid, got in mails.items():
        assert len(got) == 1, (cid, len(got))
        assert profiles[cid]["email"] in str(got[0]["To"])
    assert all(n == 1 for n in sink.store.attempts.values()), sink.store.attempts
    assert len(sink.store.messages()) == len(cast.emailed)  # nothing under another run

    # Text: exactly one per reminded customer who neither opened nor withheld consent.
    texts = outbox_lines(outbox, text_run)
    assert Counter(x["customer_id"] for x in texts) == Counter(cast.texted)
    assert {x["customer_id"]: x["address"] for x in texts} == {
        c: profiles[c]["phone"] for c in cast.texted
    }
    written = sorted(str(p.relative_to(outbox)) for p in outbox.rglob("*") if p.is_file())
    assert written == [f"{text_run}/sms.jsonl"]  # no email went to the outbox

    rows = instance_rows(db)
    # One instance per entrant; the cheap cart entered nothing.
    assert set(rows) == set(cast.entrants)
    assert cast.low_value not in rows
    assert all(len(v) == 1 for v in rows.values()), {c: len(v) for c, v in rows.items()}
    only = {c: v[0] for c, v in rows.items()}

    # Buyers of their cart exited on the order; another cart's order ended nothing.
    for cid in cast.buyers:
        assert (only[cid].state, only[cid].exit_reason) == ("exited", "event:purchase"), cid
    assert only[cast.other_cart].state == "exited"  # by the journey's own last step
    assert only[cast.other_cart].exit_reason == "done"

    # The holdout is the one the journey's hash names, and went through unsent.
    assert {c for c, r in only.items() if r.holdout} == set(cast.holdout)
    for cid in cast.holdout:
        assert (only[cid].state, only[cid].exit_reason) == ("exited", "done")

    with db.connect() as conn:
        steps = conn.execute(
            select(journey_steps).where(journey_steps.c.journey_id == JOURNEY)
        ).all()
        members = {
            r.customer_id: r
            for r in conn.execute(
                select(journey_members).where(journey_members.c.journey_id == JOURNEY)
            )
        }
        ledger = conn.execute(select(deliveries).where(deliveries.c.run_id == remind_run)).all()
        stored_again = conn.execute(
            select(func.count()).where(events.c.event_id == again["event_id"])
        ).scalar()
        queued = conn.execute(select(func.count()).select_from(journey_inbox)).scalar()
    by = {(s.instance_id, s.step_id): s for s in steps}
    inst = {c: r.instance_id for c, r in only.items()}

    # Re-entry refused: the event was stored and applied, the member entered once.
    assert stored_again == 1 and queued == 0
    assert members[cast.reenters].entries == 1
    assert members[cast.reenters].live_instance is None  # the one instance has ended

    # Step outcomes: sent for the reminded, holdout for the holdout, never for buyers.
    for cid in cast.emailed:
        assert by[(inst[cid], "remind")].outcome == "sent", cid
    for cid in cast.holdout:
        assert by[(inst[cid], "remind")].outcome == "holdout", cid
        assert by[(inst[cid], "text")].outcome == "holdout", cid
    for cid in cast.buyers:
        assert (inst[cid], "remind") not in by, cid
        left = by[(inst[cid], "grace")]  # the exit, recorded at the step it was at
        assert (left.kind, left.outcome) == ("exit", "event:purchase")
        entered = utc(only[cid].entered_at)
        assert entered is not None and utc(left.at) < entered + timedelta(seconds=GRACE_S)
    assert by[(inst[cast.opener], "opened")].outcome == "then"
    assert (inst[cast.opener], "text") not in by
    assert by[(inst[cast.no_sms_consent], "text")].outcome == "rejected:consent"

    # Quiet hours: the reminder is deferred to 08:00 local, booked, not sent; the
    # instance's clock waits from then.
    ledger_of = {r.customer_id: r for r in ledger}
    for cid in cast.night:
        step = by[(inst[cid], "remind")]
        assert step.outcome == "deferred", (cid, step.outcome)
        after = datetime.fromisoformat(json.loads(step.detail)["send_after"])
        assert after > checked_at
        local = after.astimezone(ZoneInfo(profiles[cid]["time_zone"]))
        assert (local.hour, local.minute) == (8, 0)
        booked = ledger_of[cid]
        assert booked.state == "deferred" and utc(booked.send_after) == after
        assert only[cid].state == "live" and only[cid].step == "later"
        assert utc(only[cid].due_at) == after + timedelta(seconds=LATER_S)
    assert {c for c, r in ledger_of.items() if r.state == "sent"} == cast.emailed
    assert set(ledger_of) == cast.emailed | set(cast.night)  # the holdout books nothing

    # Parked: the unknown type and the keyless abandonment, with reasons; all acked.
    parked = client.xrange(f"{stream}:parked")
    reasons = {json.loads(fields["entry"])["event"]: fields["reason"] for _, fields in parked}
    assert len(parked) == 2
    by_event = {json.loads(body)["event_id"]: why for body, why in reasons.items()}
    assert "unknown event type 'wishlist_added'" in by_event[unknown["event_id"]]
    assert by_event[keyless["event_id"]].startswith("properties.cart_id: required")
    assert client.xpending(stream, GROUP)["pending"] == 0

    # The funnel, as `sluice journey status` reports it.
    figures = sluice(env, "journey", "status", JOURNEY)
    assert figures["entries"] == len(cast.entrants)
    assert figures["exited"] == {
        "event:purchase": len(cast.buyers),
        "done": len(cast.entrants) - len(cast.buyers) - len(cast.night),
    }
    assert figures["live"] == len(cast.night)
    assert figures["sent"] == len(cast.emailed) + len(cast.texted)
    remind = next(s for s in figures["steps"] if s["step"] == "remind")["outcomes"]
    assert remind == {
        "sent": {"treated": len(cast.emailed)},
        "holdout": {"holdout": len(cast.holdout)},
        "deferred": {"treated": len(cast.night)},
    }
