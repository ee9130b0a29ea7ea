"""Helpers for the cart-abandonment journey end to end (test_journeys.py): the
scenario's constants, its cast and their customer table, the journey spec, the CLI
runner, polling, orchestrator shutdown, and readers of the mail sink, the SMS outbox
and the database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis
import yaml
from sqlalchemy import Engine, select

from sluice.devtools.mailsink import MailSink
from sluice.store.schema import journey_instances

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
