"""Properties of delivery over interleavings of reserve, deliver, crash, approve-like
retries, suppress and clock moves, against the real ledger and the file outbox.

Whatever the order: no message is sent twice, none is sent while its recipient is
suppressed, none in the recipient's quiet hours, and no recipient gets more than the cap
on one local day.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluice.channels.base import OutboundMessage
from sluice.channels.outbox import OutboxTransport
from sluice.contracts.clock import Clock
from sluice.coordinator.delivery import Deliverer, DeliveryPolicy
from sluice.coordinator.sendtime import SendRules
from sluice.gates.compliance import window_end
from sluice.store import connect, dispose_all
from sluice.store.ledger import Ledger, Reservation
from sluice.store.suppressions import Suppressions

START = datetime(2026, 7, 1, 10, tzinfo=UTC)
QUIET = (time(21), time(8))
CAP = 1
LEASE = timedelta(minutes=2)
PEOPLE = {"c0": "Europe/Berlin", "c1": "America/New_York", "c2": "Asia/Tokyo"}

op = st.one_of(
    st.tuples(st.just("reserve"), st.sampled_from(sorted(PEOPLE)), st.sampled_from(["a", "b"])),
    st.tuples(st.just("deliver"), st.sampled_from(["w1", "w2"])),
    st.tuples(st.just("crash"), st.sampled_from(["w1", "w2"])),
    st.tuples(st.just("suppress"), st.sampled_from(sorted(PEOPLE))),
    st.tuples(st.just("advance"), st.sampled_from([1, 3, 7, 13])),
    st.tuples(st.just("promote")),
)


@dataclass
class World:
    root: Path
    url: str
    now: datetime = START
    step: int = 0
    """The number of the operation being carried out (the order of events)."""
    sends: list[tuple[str, str, datetime, int]] = field(default_factory=list)
    """(idempotency key, customer, when, step) for every message the outbox received."""
    suppressed_at: dict[str, int] = field(default_factory=dict)
    """The step at which each customer was suppressed."""
    seen_lines: int = 0

    def ledger(self) -> Ledger:
        return Ledger(connect(self.url), Clock.at(self.now))

    def outbox(self) -> OutboxTransport:
        return OutboxTransport(self.root, "run-p", "sms")

    def collect(self) -> None:
        path = self.root / "run-p" / "sms.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        for line in lines[self.seen_lines :]:
            m = json.loads(line)
            self.sends.append((m["idempotency_key"], m["customer_id"], self.now, self.step))
        self.seen_lines = len(lines)


def reserve(w: World, customer: str, campaign: str) -> None:
    key = f"{campaign}-{customer}"
    local = w.now.astimezone(ZoneInfo(PEOPLE[customer]))
    until = window_end(local, *QUIET)
    day = (until.astimezone(local.tzinfo) if until else local).date()
    payload = {
        "channel": "sms",
        "address": "+15550000000",
        "run_id": f"run-{campaign}",
        "campaign_id": campaign,
        "customer_id": customer,
        "text": "Hi",
    }
    item = Reservation(
        key, f"run-{campaign}", campaign, customer, "sms", "outbox", None, "o", "main", day,
        payload, until, PEOPLE[customer],
    )  # fmt: skip
    w.ledger().reserve([item], CAP, w.now)


RUNS = ("run-a", "run-b")


def pending(ledger: Ledger) -> list[Any]:
    """Both campaigns' reserved rows (one run each)."""
    return [row for run in RUNS for row in ledger.pending(run)]


RULES = SendRules(quiet=QUIET, cap=CAP, offer_ends={"o": date(2026, 12, 31)})


def deliver(w: World, worker: str) -> None:
    ledger = w.ledger()
    d = Deliverer(
        ledger, {"sms": w.outbox()}, {"sms": 1}, DeliveryPolicy(lease=LEASE), "b", worker, RULES
    )
    d.deliver(pending(ledger))
    d.close()
    w.collect()


def crash(w: World, worker: str) -> None:
    """A worker checks and claims the first free row as the deliverer does, the provider
    takes the message, and the worker dies before it records the outcome: only
    reconciliation can tell."""
    ledger = w.ledger()
    for row in pending(ledger):
        if (
            row.attempt_started_at is None
            and RULES.check(row, w.now).action == "go"
            and ledger.claim(row.idempotency_key, worker, LEASE, "b")
        ):
            w.outbox().send(OutboundMessage.from_payload(row.idempotency_key, row.payload))
            w.collect()
            return


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(ops=st.lists(op, min_size=1, max_size=25))
def test_no_double_send_no_send_while_suppressed_in_quiet_hours_or_over_the_cap(
    fresh_database: Callable[[Path], str], ops: list[tuple[Any, ...]]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        w = World(Path(tmp), fresh_database(Path(tmp)))
        for step, (name, *args) in enumerate(ops):
            w.step = step
            if name == "reserve":
                reserve(w, *args)
            elif name == "deliver":
                deliver(w, *args)
            elif name == "crash":
                crash(w, *args)
            elif name == "suppress":
                if Suppressions(connect(w.url), Clock.at(w.now)).add(args[0], "unsubscribed"):
                    w.suppressed_at.setdefault(args[0], step)
            elif name == "advance":
                w.now += timedelta(hours=args[0])
            elif name == "promote":
                for run in RUNS:
                    w.ledger().promote_due(run, w.now)
        # Drain: two days of deliveries, every few hours, so deferrals and leases resolve.
        for _ in range(16):
            w.step += 1
            w.now += timedelta(hours=3)
            for run in RUNS:
                w.ledger().promote_due(run, w.now)
            deliver(w, "w3")
        dispose_all()

        keys = [k for k, *_ in w.sends]
        assert len(keys) == len(set(keys)), "a message was sent twice"
        per_day: dict[tuple[str, date], int] = {}
        for key, customer, when, step in w.sends:
            local = when.astimezone(ZoneInfo(PEOPLE[customer]))
            assert window_end(local, *QUIET) is None, f"{key} sent at {local} (quiet hours)"
            assert customer not in w.suppressed_at or step < w.suppressed_at[customer], key
            per_day[(customer, local.date())] = per_day.get((customer, local.date()), 0) + 1
        assert all(n <= CAP for n in per_day.values()), per_day
