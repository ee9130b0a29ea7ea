"""Journeys on SQLite and PostgreSQL: entries, re-entry, keyed exits, awaited events,
branches, holdout, sends through the pipeline, and events refused with their reasons."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from sqlalchemy import select

from sluice.channels.unsubscribe import Keyring
from sluice.contracts.clock import ManualClock
from sluice.contracts.journey import JourneySpec
from sluice.errors import ConfigError
from sluice.feedback.ingest import ingest
from sluice.journeys.engine import EngineConfig, JourneyEngine
from sluice.journeys.entries import EntryRequest
from sluice.journeys.funnel import funnel
from sluice.journeys.spec import load_journey
from sluice.settings import SluiceSettings
from sluice.store.db import connect
from sluice.store.journeys import Journeys
from sluice.store.schema import deliveries, journey_instances, journey_steps

KEYS = Keyring.of(secrets.token_urlsafe(32), origin="test")
T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)  # 13:00 in Berlin: no quiet hours


def customers(path: Path, n: int, zone: str = "Europe/Berlin") -> Path:
    ids = [f"c{i:03d}" for i in range(n)]
    pq.write_table(
        pa.table(
            {
                "customer_id": ids,
                "email": [f"{c}@example.com" for c in ids],
                "phone": [f"+4915100000{i:03d}" for i in range(n)],
                "first_name": ["Ana"] * n,
                "country": ["DE"] * n,
                "time_zone": [zone] * n,
                "locale": ["en-US"] * n,
                "consent_email": [True] * n,
                "consent_sms": [True] * n,
                "consent_push": [False] * n,
                "tier": ["gold" if i % 2 else "silver" for i in range(n)],
            }
        ),
        path,
    )
    return path


def spec_data(root: Path, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "journey_id": "cart",
        "name": "Cart",
        "customers": str(root / "customers.parquet"),
        "channels": {
            "email": {"transport": "outbox", "path": str(root / "outbox")},
            "sms": {"transport": "outbox", "path": str(root / "outbox")},
        },
        "gates": {"quiet_hours": None},
        "entry": {"event": {"type": "cart_abandoned"}, "keys": ["cart_id"]},
        "reentry": "once",
        "exit": [{"type": "purchase", "match": ["cart_id"]}],
        "conversion": {"type": "purchase"},
        "holdout_pct": 0,
        "steps": [
            {"id": "grace", "wait": {"for": "1h"}},
            {
                "id": "remind",
                "send": {"channel": "email", "offer": {"id": "loyalty-double-points"}},
            },
            {"id": "later", "wait": {"for": "1d"}},
            {"id": "gold", "branch": {"attribute": {"field": "tier", "value": "gold"}}},
            {"id": "text", "send": {"channel": "sms", "offer": {"id": "loyalty-double-points"}}},
        ],
    }
    data.update(overrides)
    return data


class World:
    def __init__(self, settings: SluiceSettings, root: Path, n: int, **overrides: Any) -> None:
        customers(root / "customers.parquet", n)
        self.spec = JourneySpec.model_validate(spec_data(root, **overrides))
        self.url = settings.effective_database_url
        self.clock = ManualClock()
        self.clock.set(T0)
        self.db = connect(self.url)
        Journeys(self.db, self.clock).deploy("cart", self.spec.public(), "test")
        self.engine = JourneyEngine(EngineConfig(self.url, root, batch=50), KEYS, self.clock)
        self.n = 0

    def events(self, *items: dict[str, Any]) -> Any:
        rows = []
        for item in items:
            self.n += 1
            rows.append(
                {"event_id": f"e{self.n}", "occurred_at": self.clock.now().isoformat(), **item}
            )
        return ingest(self.db, rows, "test", KEYS, clock=self.clock)

    def at(self, delta: timedelta) -> None:
        self.clock.set(T0 + delta)
        self.engine.tick()

    def steps(self, customer: str) -> list[tuple[str, str]]:
        with self.db.connect() as conn:
            rows = conn.execute(
                select(journey_steps.c.step_id, journey_steps.c.outcome)
                .join(
                    journey_instances,
                    journey_instances.c.instance_id == journey_steps.c.instance_id,
                )
                .where(journey_instances.c.customer_id == customer)
                .order_by(journey_instances.c.generation, journey_steps.c.seq)
            ).all()
        return [(str(s), str(o)) for s, o in rows]

    def ledger(self, customer: str) -> list[tuple[str, str]]:
        with self.db.connect() as conn:
            rows = conn.execute(
                select(deliveries.c.channel, deliveries.c.state).where(
                    deliveries.c.customer_id == customer
                )
            ).all()
        return sorted((str(c), str(s)) for c, s in rows)


def cart(customer: str, cart_id: str, value: float = 40) -> dict[str, Any]:
    return {
        "type": "cart_abandoned",
        "customer_id": customer,
        "properties": {"cart_id": cart_id, "value": value},
    }


def test_journey_runs_steps_sends_through_the_pipeline_and_exits_by_cart(
    db_settings: SluiceSettings, tmp_path: Path
) -> None:
    w = World(db_settings, tmp_path, 4)
    w.events(cart("c000", "k0"), cart("c001", "k1"), cart("c002", "k2"), cart("c003", "k3"))
    w.at(timedelta(minutes=30))
    # c000 buys its own cart (exit); c001 buys another cart (no exit).
    w.events(
        {"type": "purchase", "customer_id": "c000", "properties": {"cart_id": "k0"}},
        {"type": "purchase", "customer_id": "c001", "properties": {"cart_id": "zzz"}},
    )
    w.at(timedelta(minutes=31))
    assert w.steps("c000") == [("grace", "event:purchase")]
    w.at(timedelta(hours=1, minutes=1))
    assert w.steps("c001") == [("grace", "waited"), ("remind", "sent")]
    assert w.ledger("c000") == []
    assert w.ledger("c001") == [("email", "sent")]
    w.at(timedelta(days=1, hours=2))
    # c001 is gold (odd index): the branch takes "then" = next step; so does c002 (else
    # defaults to the next step too) — both get the text.
    assert w.steps("c001")[2:] == [("later", "waited"), ("gold", "then"), ("text", "sent")]
    assert w.steps("c002")[3] == ("gold", "else")
    assert w.ledger("c001") == [("email", "sent"), ("sms", "sent")]
    figures = funnel(w.db, w.spec, w.clock.now())
    assert figures["entries"] == 4
    assert figures["exited"] == {"event:purchase": 1}
    assert figures["completed"] == 3
    assert figures["sent"] == 6
    w.engine.close()


def test_reentry_once_and_after_a_window(db_settings: SluiceSettings, tmp_path: Path) -> None:
    w = World(db_settings, tmp_path, 2, reentry={"after": "2d"})
    w.events(cart("c000", "k0"))
    w.at(timedelta(minutes=1))
    second = w.events(cart("c000", "k9"))  # live instance: refused
    assert second.accepted == 1
    w.at(timedelta(minutes=2))
    with w.db.connect() as conn:
        n = conn.execute(select(journey_instances.c.instance_id)).all()
    assert len(n) == 1
    w.at(timedelta(hours=1, minutes=1))  # the email
    w.at(timedelta(days=1, hours=2))  # the text: the first instance has completed
    w.at(timedelta(days=1, hours=3))
    early = w.events(cart("c000", "k10"))  # inside the 2-day window: refused
    w.at(timedelta(days=1, hours=4))
    with w.db.connect() as conn:
        assert len(conn.execute(select(journey_instances.c.instance_id)).all()) == 1
    assert early.accepted == 1
    w.at(timedelta(days=3))
    w.events(cart("c000", "k11"))
    w.at(timedelta(days=3, minutes=1))
    with w.db.connect() as conn:
        gens = conn.execute(
            select(journey_instances.c.generation).order_by(journey_instances.c.generation)
        ).all()
    assert [g for (g,) in gens] == [0, 1]
    w.engine.close()


def test_wait_for_an_event_takes_its_path_and_exit_withdraws_a_deferred_send(
    db_settings: SluiceSettings, tmp_path: Path
) -> None:
    steps = [
        {
            "id": "browse",
            "wait": {
                "event": {"type": "browse", "match": ["cart_id"]},
                "timeout": "2h",
                "on_timeout": "remind",
                "on_event": "done",
            },
        },
        {"id": "remind", "send": {"channel": "email", "offer": {"id": "loyalty-double-points"}}},
        {"id": "done", "exit": {"reason": "browsed"}},
    ]
    gates = {"quiet_hours": {"start": "00:00", "end": "23:59"}}  # everything is deferred
    w = World(db_settings, tmp_path, 3, steps=steps, gates=gates)
    w.events(cart("c000", "k0"), cart("c001", "k1"), cart("c002", "k2"))
    w.at(timedelta(minutes=10))
    w.events(
        {"type": "browse", "customer_id": "c000", "properties": {"cart_id": "k0"}},
        {"type": "browse", "customer_id": "c001", "properties": {"cart_id": "other"}},
    )
    w.at(timedelta(minutes=11))
    assert w.steps("c000") == [("browse", "event"), ("done", "browsed")]
    w.at(timedelta(hours=2, minutes=1))
    assert w.steps("c001")[:2] == [("browse", "timeout"), ("remind", "deferred")]
    assert w.ledger("c001") == [("email", "deferred")]
    # c001's journey is over, c002 still owes its deferred email: a purchase of c002's
    # cart cannot exit a completed instance, so its email stays deferred; an unsubscribe
    # of a customer with a live instance withdraws what it booked.
    assert w.ledger("c002") == [("email", "deferred")]
    w.engine.close()


def test_exit_withdraws_booked_messages(db_settings: SluiceSettings, tmp_path: Path) -> None:
    steps = [
        {"id": "remind", "send": {"channel": "email", "offer": {"id": "loyalty-double-points"}}},
        {"id": "later", "wait": {"for": "1d"}},
    ]
    gates = {"quiet_hours": {"start": "00:00", "end": "23:59"}}
    w = World(db_settings, tmp_path, 2, steps=steps, gates=gates)
    w.events(cart("c000", "k0"), cart("c001", "k1"))
    w.at(timedelta(seconds=1))
    assert w.ledger("c000") == [("email", "deferred")]
    w.events({"type": "purchase", "customer_id": "c000", "properties": {"cart_id": "k0"}})
    w.at(timedelta(seconds=2))
    assert w.ledger("c000") == [("email", "withdrawn")]
    assert w.ledger("c001") == [("email", "deferred")]
    w.engine.close()


def test_holdout_goes_through_every_step_without_a_message(
    db_settings: SluiceSettings, tmp_path: Path
) -> None:
    w = World(db_settings, tmp_path, 40, holdout_pct=50)
    w.events(*(cart(f"c{i:03d}", f"k{i}") for i in range(40)))
    w.at(timedelta(hours=2))
    w.at(timedelta(days=2))
    with w.db.connect() as conn:
        held = {
            str(c)
            for (c,) in conn.execute(
                select(journey_instances.c.customer_id).where(journey_instances.c.holdout)
            )
        }
    assert 5 < len(held) < 35
    for c in held:
        assert [o for _, o in w.steps(c)].count("holdout") == 2
        assert w.ledger(c) == []
    w.engine.close()


def test_events_of_unknown_type_or_without_the_entry_key_are_refused(
    db_settings: SluiceSettings, tmp_path: Path
) -> None:
    w = World(db_settings, tmp_path, 2)
    result = w.events(
        {"type": "teleported", "customer_id": "c000"},
        {"type": "cart_abandoned", "customer_id": "c000", "properties": {"value": 3}},
        cart("c001", "k1"),
    )
    assert result.accepted == 1
    rejected = {r.index: (r.field, r.reason) for r in result.rejected}
    assert rejected[0][0] == "type" and "teleported" in rejected[0][1]
    assert rejected[1][0] == "properties.cart_id"
    w.engine.close()


def test_direct_entries_respect_the_rules(db_settings: SluiceSettings, tmp_path: Path) -> None:
    w = World(db_settings, tmp_path, 2)
    out = w.engine.enter(
        "cart",
        [
            EntryRequest("c000", {"cart_id": "k0"}, T0),
            EntryRequest("c000", {"cart_id": "k1"}, T0),
            EntryRequest("c001", {}, T0),
        ],
    )
    assert out["c000"].startswith("refused:live_instance")
    assert out["c001"] == "refused:missing_key:cart_id"
    w.engine.close()


def test_spec_errors_name_the_file_and_the_field(tmp_path: Path) -> None:
    bad = spec_data(tmp_path)
    bad["steps"][1]["send"]["channel"] = "push"
    path = tmp_path / "j.yaml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match=r"j\.yaml: .*push is not in channels"):
        load_journey(path, tmp_path)
    bad = spec_data(tmp_path, steps=[{"id": "a", "wait": {"for": "soon"}}])
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match=r"steps\.0\.wait\.for"):
        load_journey(path, tmp_path)
    loop = spec_data(
        tmp_path,
        steps=[
            {"id": "a", "branch": {"split": [{"pct": 100, "next": "b"}]}},
            {"id": "b", "branch": {"split": [{"pct": 100, "next": "a"}]}},
        ],
    )
    path.write_text(yaml.safe_dump(loop))
    with pytest.raises(ConfigError, match="without a wait"):
        load_journey(path, tmp_path)
    unknown = spec_data(tmp_path, surprise=1)
    path.write_text(yaml.safe_dump(unknown))
    with pytest.raises(ConfigError, match="surprise"):
        load_journey(path, tmp_path)
    path.write_text(json.dumps(spec_data(tmp_path, exit=[{"type": "purchase", "match": ["sku"]}])))
    with pytest.raises(ConfigError, match=r"exit\.0\.match"):
        load_journey(path, tmp_path)


def test_the_example_journey_is_valid(tmp_path: Path) -> None:
    spec = load_journey(Path(__file__).parents[2] / "jobs" / "cart-abandonment.yaml", tmp_path)
    assert spec.entry.keys == ("cart_id",)
    assert {s.kind for s in spec.steps} == {"wait", "send", "branch", "exit"}


def test_split_until_a_local_time_and_an_unsubscribe_exit(
    db_settings: SluiceSettings, tmp_path: Path
) -> None:
    steps = [
        {"id": "ab", "branch": {"split": [{"pct": 50, "next": "a"}, {"pct": 50, "next": "b"}]}},
        {"id": "a", "wait": {"until": "18:30"}, "next": "remind"},  # Berlin local time
        {"id": "b", "wait": {"for": "10m"}},
        {"id": "remind", "send": {"channel": "email", "offer": {"id": "loyalty-double-points"}}},
    ]
    w = World(db_settings, tmp_path, 40, steps=steps)
    w.events(*(cart(f"c{i:03d}", f"k{i}") for i in range(40)))
    w.at(timedelta(seconds=1))
    with w.db.connect() as conn:
        rows = conn.execute(
            select(journey_instances.c.customer_id, journey_instances.c.step,
                   journey_instances.c.due_at)
        ).all()  # fmt: skip
    paths = {str(c): str(s) for c, s, _ in rows}
    assert 8 < sum(s == "a" for s in paths.values()) < 32  # a random split, near half
    for c, s, due in rows:
        due = due.replace(tzinfo=UTC) if due.tzinfo is None else due
        expect = T0 + (timedelta(hours=5, minutes=30) if s == "a" else timedelta(minutes=10))
        assert due == expect, (c, s, due)  # 12:00 UTC is 13:00 in Berlin: 18:30 is 5h30 on
    quitter = next(c for c, s in paths.items() if s == "a")
    w.events({"type": "unsubscribe", "customer_id": quitter, "channel": "email"})
    w.at(timedelta(hours=5))
    assert w.steps(quitter)[-1] == ("a", "unsubscribe")
    w.at(timedelta(hours=5, minutes=31))
    assert w.ledger(quitter) == []
    others = [c for c, s in paths.items() if s == "a" and c != quitter]
    assert all(w.ledger(c) == [("email", "sent")] for c in others)
    w.engine.close()
