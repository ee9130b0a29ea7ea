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
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis
from sqlalchemy import create_engine, func, select
from tests.e2e.journey_support import (
    DEADLINE_S,
    GRACE_S,
    GROUP,
    JOURNEY,
    LATER_S,
    REDIS_URL,
    ROOT,
    cast_of,
    event,
    group_exists,
    instance_rows,
    mails_by_customer,
    outbox_lines,
    sluice,
    standing,
    stop,
    utc,
    wait_for,
    write_customers,
    write_spec,
)

from sluice.devtools.mailsink import MailSink
from sluice.feedback.stream import publish
from sluice.journeys.entries import in_holdout
from sluice.journeys.spec import load_journey
from sluice.store.schema import deliveries, events, journey_inbox, journey_members, journey_steps


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
