"""Backtesting a journey: recorded events replayed through it on a virtual clock.

The same engine, gates, ledger and pipeline as production run against a scratch
SQLite database with every channel pointed at a scratch outbox, so nothing is sent and
no production state is read or written. Events are applied in time order; between
them the virtual clock jumps to each due timer (a wait ending, a deferred send coming
due) and runs it, so a journey of days replays in seconds. What would have been
delivered lands in the scratch outbox (``would_send`` in the report); caps, quiet hours
and every gate judge as they would have. Frequency caps count only the backtest's own
messages, and suppressions start empty.
"""

from __future__ import annotations

import json
import secrets
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from sluice.channels.unsubscribe import Keyring
from sluice.contracts.campaign import OutboxChannel
from sluice.contracts.clock import ManualClock
from sluice.contracts.journey import JourneySpec
from sluice.errors import InputError
from sluice.feedback.ingest import ingest
from sluice.journeys.deferred import DeferredSends
from sluice.journeys.engine import EngineConfig, JourneyEngine, TickReport
from sluice.journeys.funnel import funnel
from sluice.store.db import connect, dispose
from sluice.store.journey_reads import next_due
from sluice.store.journeys import Journeys

WINDOW = 5_000
"""Events applied per round at most (all before the next due timer)."""


@dataclass
class SimulationResult:
    events: int
    rejected: int
    started: datetime
    ended: datetime
    funnel: dict[str, Any]
    llm_calls: int
    counts: Counter[str] = field(default_factory=Counter)

    def summary(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "rejected_events": self.rejected,
            "started": self.started.isoformat(),
            "ended": self.ended.isoformat(),
            "llm_calls": self.llm_calls,
            **{k: v for k, v in self.funnel.items() if k != "steps"},
            "steps": self.funnel["steps"],
        }


def read_events(path: Path) -> list[dict[str, Any]]:
    """Recorded events (JSON Lines or Parquet), in time order; a line that is not JSON
    is an error naming the line."""
    if not path.is_file():
        raise InputError(f"{path}: events file not found", field="events")
    if path.suffix == ".parquet":
        rows = pq.read_table(path).to_pylist()
    else:
        rows = []
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{n}: not JSON ({exc.msg})", field="events") from exc
    for r in rows:
        if isinstance(r.get("occurred_at"), datetime):
            r["occurred_at"] = r["occurred_at"].isoformat()
    return sorted(rows, key=lambda r: _when(r) or datetime.max.replace(tzinfo=UTC))


def _when(row: dict[str, Any]) -> datetime | None:
    try:
        at = datetime.fromisoformat(str(row.get("occurred_at")))
    except ValueError:
        return None
    return at if at.tzinfo else None


def first_gap(spec: JourneySpec) -> timedelta:
    """The least time between an entry and its first due step (0 unless the journey
    starts with a fixed wait)."""
    wait = spec.steps[0].wait
    if wait is None or wait.until is not None:
        return timedelta(0)
    return wait.for_ or wait.timeout or timedelta(0)


def scratch_spec(spec: JourneySpec, outbox: Path) -> JourneySpec:
    """The journey with every channel delivering to ``outbox``."""
    channels = {ch: OutboxChannel(path=outbox) for ch in spec.channels}
    return spec.model_copy(update={"channels": channels})


def simulate(
    spec: JourneySpec, events_path: Path, home: Path, max_rounds: int = 1_000_000
) -> SimulationResult:
    rows = read_events(events_path)
    root = home / "simulations"
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"{spec.journey_id}-", dir=root))
    url = f"sqlite:///{scratch / 'backtest.db'}"
    clock = ManualClock()
    first = next((w for r in rows if (w := _when(r)) is not None), datetime.now(UTC))
    clock.set(first)
    sim = scratch_spec(spec, scratch / "outbox")
    engine_db = connect(url)
    Journeys(engine_db, clock).deploy(sim.journey_id, sim.public(), "backtest")
    keys = Keyring.of(secrets.token_urlsafe(32), origin="backtest")
    engine = JourneyEngine(EngineConfig(url, scratch), keys, clock)
    deferred = DeferredSends(engine_db, url, keys, clock, engine.core_of)
    gap = first_gap(spec)
    total = TickReport()
    rejected = 0
    i = 0
    try:
        for _ in range(max_rounds):
            due = next_due(engine_db)
            upcoming = _when(rows[i]) if i < len(rows) else None
            if i >= len(rows) and due is None:
                break
            if i < len(rows) and (upcoming is None or due is None or upcoming <= due):
                # Events up to the next due timer, and no later than the earliest a step of
                # an instance they create could come due.
                until = upcoming + gap if upcoming is not None else None
                if due is not None and until is not None:
                    until = min(until, due)
                j = i + 1
                while j < len(rows) and j - i < WINDOW:
                    at = _when(rows[j])
                    if at is None or until is None or at > until or (at == until and gap):
                        break
                    j += 1
                clock.set(max(clock.now(), upcoming or clock.now()))
                last = _when(rows[j - 1])
                if last is not None:
                    clock.set(max(clock.now(), last))
                result = ingest(engine_db, rows[i:j], "backtest", keys, clock=clock)
                rejected += len(result.rejected)
                i = j
            else:
                assert due is not None
                clock.set(max(clock.now(), due))
            total.add(engine.tick())
            deferred.deliver_due()
        figures = funnel(engine_db, sim, clock.now())
        _rename_sent(figures)
        return SimulationResult(
            len(rows), rejected, first, clock.now(), figures, engine.llm_calls, total.counts
        )
    finally:
        deferred.close()
        engine.close()
        dispose(url)
        shutil.rmtree(scratch, ignore_errors=True)


def _rename_sent(figures: dict[str, Any]) -> None:
    """In a backtest, "sent" means it would have been sent."""
    for step in figures["steps"]:
        outcomes = step["outcomes"]
        if "sent" in outcomes:
            outcomes["would_send"] = outcomes.pop("sent")
    figures["would_send"] = figures.pop("sent", 0)
