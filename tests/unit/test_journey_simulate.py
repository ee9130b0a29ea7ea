"""The backtest: recorded events through a journey on a virtual clock, nothing sent and
no production state touched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import yaml
from sqlalchemy import inspect, select
from test_journeys import T0, customers, spec_data

from sluice.journeys.simulate import simulate
from sluice.journeys.spec import load_journey
from sluice.settings import SluiceSettings
from sluice.store.db import connect
from sluice.store.schema import journeys


def record(path: Path, n: int) -> Path:
    """Carts for ``n`` customers an hour apart; every third buys its cart 30 minutes later;
    one event of an unknown type and one cart without its key."""
    rows = []
    for i in range(n):
        c, at = f"c{i:03d}", T0 + timedelta(hours=i)
        rows.append(
            {
                "event_id": f"cart-{c}",
                "type": "cart_abandoned",
                "customer_id": c,
                "occurred_at": at.isoformat(),
                "properties": {"cart_id": f"k{c}", "value": 50},
            }
        )
        if i % 3 == 0:
            rows.append(
                {
                    "event_id": f"buy-{c}",
                    "type": "purchase",
                    "customer_id": c,
                    "occurred_at": (at + timedelta(minutes=30)).isoformat(),
                    "properties": {"cart_id": f"k{c}"},
                }
            )
    rows.append({"event_id": "x1", "type": "teleported", "customer_id": "c000",
                 "occurred_at": T0.isoformat()})  # fmt: skip
    rows.append({"event_id": "x2", "type": "cart_abandoned", "customer_id": "c001",
                 "occurred_at": T0.isoformat(), "properties": {"value": 9}})  # fmt: skip
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_backtest_reports_each_step_without_sending(
    fresh_settings: SluiceSettings, tmp_path: Path
) -> None:
    customers(tmp_path / "customers.parquet", 12, zone="UTC")
    path = tmp_path / "journey.yaml"
    path.write_text(yaml.safe_dump(spec_data(tmp_path, gates={"quiet_hours": {}})))
    spec = load_journey(path, tmp_path)
    result = simulate(spec, record(tmp_path / "events.jsonl", 12), fresh_settings.home_dir)
    figures = result.funnel
    steps = {s["step"]: s["outcomes"] for s in figures["steps"]}
    assert result.events == 18 and result.rejected == 2
    assert figures["entries"] == 12
    assert figures["exited"] == {"event:purchase": 4}  # bought within the hour
    assert steps["grace"]["event:purchase"]["treated"] == 4
    sent = steps["remind"].get("would_send", {}).get("treated", 0)
    deferred = steps["remind"].get("deferred", {}).get("treated", 0)
    assert sent + deferred == 8  # quiet hours 21:00-08:00 UTC defer the late ones
    assert deferred > 0 and sent > 0
    assert figures["live"] == 0  # the virtual clock ran every timer out
    assert not (tmp_path / "outbox").exists()  # the spec's own outbox was never written
    production = connect(fresh_settings.effective_database_url)
    assert "journeys" not in inspect(production).get_table_names() or not (
        production.connect().execute(select(journeys)).all()
    )
    assert not list((fresh_settings.home_dir / "simulations").iterdir())  # scratch removed


def test_simulate_command_ends_with_the_figures(
    fresh_settings: SluiceSettings, tmp_path: Path
) -> None:
    customers(tmp_path / "customers.parquet", 6, zone="UTC")
    path = tmp_path / "journey.yaml"
    path.write_text(yaml.safe_dump(spec_data(tmp_path, gates={"quiet_hours": None})))
    env = {**os.environ, "SLUICE_HOME": str(fresh_settings.home_dir), "COLUMNS": "200"}
    events = record(tmp_path / "e.jsonl", 6)
    done = subprocess.run(
        [sys.executable, "-m", "sluice", "journey", "simulate", str(path), "--events", str(events)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["entries"] == 6 and figures["rejected_events"] == 2
    assert figures["would_send"] == 8  # 4 non-buyers x (email + text)
