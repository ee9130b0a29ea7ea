"""The orchestrator's timers: scheduled journey audiences, deferred sends after a
restart, and guardrail checks of canary runs (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import select
from test_journeys import KEYS, T0, World, cart

from sluice.journeys.engine import EngineConfig
from sluice.orchestrator.loop import Orchestrator, OrchestratorConfig
from sluice.settings import SluiceSettings
from sluice.store.runs import Runs
from sluice.store.schema import deliveries, journey_instances


def orchestrator(w: World, root: Path, **extra: object) -> Orchestrator:
    config = OrchestratorConfig(EngineConfig(w.url, root, batch=50), **extra)  # type: ignore[arg-type]
    return Orchestrator(config, KEYS, w.clock)


def test_a_scheduled_audience_enters_once_per_cron_time(
    db_settings: SluiceSettings, tmp_path: Path
) -> None:
    audience = tmp_path / "audience.parquet"
    pq.write_table(pa.table({"customer_id": ["c000", "c001"], "cart_id": ["k0", "k1"]}), audience)
    entry = {"schedule": {"cron": "0 9 * * *", "audience": str(audience)}, "keys": ["cart_id"]}
    w = World(db_settings, tmp_path, 2, entry=entry, reentry="always")
    w.engine.close()
    orch = orchestrator(w, tmp_path)
    w.clock.set(T0.replace(hour=8))  # first seen before 09:00: nothing due yet
    assert not orch.schedules()
    w.clock.set(T0.replace(hour=9, minute=1))
    assert orch.schedules() == {"scheduled:cart": 2}
    assert orch.schedules() == {}  # the same time is not entered twice
    restarted = orchestrator(w, tmp_path)  # state is in the database
    assert restarted.schedules() == {}
    with w.db.connect() as conn:
        entered = conn.execute(select(journey_instances.c.customer_id)).all()
    assert sorted(c for (c,) in entered) == ["c000", "c001"]
    orch.close()
    restarted.close()


def test_a_restarted_orchestrator_delivers_what_quiet_hours_deferred(
    db_settings: SluiceSettings, tmp_path: Path
) -> None:
    offer = {"id": "loyalty-double-points"}
    steps = [{"id": "remind", "send": {"channel": "email", "offer": offer}}]
    gates = {"quiet_hours": {"start": "12:00", "end": "18:00"}}  # 13:00 in Berlin: deferred
    w = World(db_settings, tmp_path, 1, steps=steps, gates=gates)
    w.events(cart("c000", "k0"))
    w.at(timedelta(seconds=1))
    assert w.ledger("c000") == [("email", "deferred")]
    w.engine.close()
    orch = orchestrator(w, tmp_path)  # a new process: no coordinator of that run yet
    w.clock.set(T0 + timedelta(hours=6))  # 19:00 in Berlin
    orch.step()
    assert w.ledger("c000") == [("email", "sent")]
    outbox = list((tmp_path / "outbox").rglob("*.jsonl"))
    assert sum(len(p.read_text().splitlines()) for p in outbox) == 1
    with w.db.connect() as conn:
        (after,) = conn.execute(select(deliveries.c.send_after)).one()
    assert after is not None
    orch.close()


def test_guardrails_are_checked_for_canary_runs_on_a_timer(
    db_settings: SluiceSettings, tmp_path: Path
) -> None:
    w = World(db_settings, tmp_path, 1)
    w.engine.close()
    runs = Runs(w.db, w.clock)
    runs.start("with-canary", "spring", {"canary": {"share_pct": 10}}, dry_run=False)
    runs.start("plain", "spring", {"canary": None}, dry_run=False)
    runs.start("rehearsal", "spring", {"canary": {"share_pct": 10}}, dry_run=True)
    checked: list[str] = []
    orch = orchestrator(w, tmp_path, guardrails=checked.append, guardrails_s=3600.0)
    orch.step()
    orch.step()  # within the interval: not again
    assert checked == ["with-canary"]
    orch.close()


def test_a_scheduled_campaign_starts_once_per_cron_time(
    db_settings: SluiceSettings, tmp_path: Path
) -> None:
    import sys
    import time

    import yaml

    w = World(db_settings, tmp_path, 1)
    w.engine.close()
    spec = yaml.safe_load((Path(__file__).parents[2] / "jobs" / "spring-boots.yaml").read_text())
    spec["schedule"] = {"cron": "0 6 * * *", "missed": "run_once"}
    path = tmp_path / "spring.yaml"
    path.write_text(yaml.safe_dump(spec))
    marks = tmp_path / "launched"

    def command(spec_path: Path, run_id: str) -> list[str]:
        # Stands in for `sluice campaign run`: records the run id it was started with.
        line = f"open({str(marks)!r}, 'a').write({run_id!r} + chr(10))"
        return [sys.executable, "-c", line]

    orch = orchestrator(w, tmp_path, campaigns=(path,), campaign_command=command)
    w.clock.set(T0.replace(hour=5))
    assert orch.schedules() == {}
    w.clock.set(T0 + timedelta(days=2, hours=-4))  # two 06:00s missed: one run for both
    assert orch.schedules() == {"launched:spring-boots": 1}
    orch.launched["campaign:spring-boots"].wait(30)
    assert orch.schedules() == {}
    deadline = time.monotonic() + 30
    while not marks.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marks.read_text().split() == ["spring-boots-20261209T0600Z"]  # the latest time
    orch.close()


def test_journey_messages_a_refusing_relay_left_owed_are_sent_once_it_takes_them(
    db_settings: SluiceSettings, tmp_path: Path
) -> None:
    """A relay that refuses the login marks the channel down: its messages stay reserved
    while the instances walk on. Once the relay takes the login, the orchestrator's retry
    sends each exactly once."""
    import os
    import socket

    from sluice.devtools.mailsink import MailSink

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # The password is read where the run delivers, from the variable the spec names.
    email = {"transport": "smtp", "host": "127.0.0.1", "port": port, "username": "sluice",
             "password_env": "PATH", "allow_hosts": ["127.0.0.1"], "timeout_s": 5}  # fmt: skip
    offer = {"id": "loyalty-double-points"}
    steps = [{"id": "remind", "send": {"channel": "email", "offer": offer}}]
    w = World(db_settings, tmp_path, 2, steps=steps, channels={"email": email})
    sink = MailSink(tmp_path / "mail", smtp_port=port, credentials=("sluice", "old")).start()
    try:
        w.events(cart("c000", "k0"), cart("c001", "k1"))
        w.at(timedelta(seconds=1))
        assert w.ledger("c000") == [("email", "reserved")]  # owed, not failed
    finally:
        sink.stop()
    w.engine.close()
    rotated = ("sluice", os.environ["PATH"])
    sink = MailSink(tmp_path / "mail2", smtp_port=port, credentials=rotated).start()
    try:
        orch = orchestrator(w, tmp_path)
        orch.step()
        assert w.ledger("c000") == w.ledger("c001") == [("email", "sent")]
        orch.step()
        assert sum(sink.store.attempts.values()) == 2
        orch.close()
    finally:
        sink.stop()
