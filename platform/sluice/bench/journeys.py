"""``sluice bench journeys``: the journey engine holding N live instances, embedded.

On the embedded default (a fresh SQLite database in the scratch directory, the real
engine and orchestrator loop, no Ray, no network), with every channel an outbox in the
scratch directory and quiet hours and the frequency cap off (so the engine itself is
measured; 10% holdout), the journey *wait 7d, email, wait 2d, exit* runs in phases:

1. entries: ``instances`` synthetic customers enter through
   :meth:`~sluice.journeys.engine.JourneyEngine.enter`, 10,000 per call, and stay live:
   entries/s.
2. steps: ``advance`` of them (at most a fifth; entered a week ago, so due at once)
   are advanced by engine ticks: the wait completes, the email is gated, booked,
   delivered to the outbox and recorded, the next wait is armed: step log rows/s (and
   sends/s), with the share of the time spent in the delivery pipeline.
3. timer lag: ``due_rate x seconds`` instances come due at a steady rate (their entry
   times were staggered when they entered) while the orchestrator loop runs
   (:meth:`~sluice.orchestrator.loop.Orchestrator.run`, idle pause ``poll``). The lag of
   one is the time from its due time to the commit of its send step, the whole work
   its timer triggered (and, beside it, to the commit of the wait's own step row).
4. baseline: the delivery pipeline's dry run, ``CoordinatorCore.submit`` with
   ``dry_run``, on candidate batches built as the engine builds them
   (:func:`~sluice.journeys.sends.candidates`), as many messages as phase 2 sent, in
   batches of the engine's size: messages/s. ``ratio`` is steps/s over that.

Setup (the customers file, the deployed journey) is not timed. Due times are chosen,
not observed: the bench stamps each instance's entry time so that it comes due when it
wants it to, and its clock (the system clock) jumps ahead once, to just before the
first timer of phase 3. Peak RSS is the process's high-water mark.
"""

from __future__ import annotations

import resource
import secrets
import shutil
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from sluice.bench.journey_setup import (
    FIRST_WAIT,
    JOURNEY_ID,
    SEND_STEP,
    BenchClock,
    StampedInstances,
    journey_spec,
    write_customers,
)
from sluice.channels.unsubscribe import Keyring
from sluice.coordinator.core import CoordinatorCore
from sluice.generation.cache import DraftCache
from sluice.journeys.context import Profiles
from sluice.journeys.engine import EngineConfig, TickReport
from sluice.journeys.entries import EntryRequest, in_holdout, instance_id
from sluice.journeys.sends import SendContext, candidates
from sluice.orchestrator.loop import Orchestrator, OrchestratorConfig
from sluice.store.db import Engine, connect, dispose
from sluice.store.instances import LIVE, Instance
from sluice.store.journey_reads import JourneyReads
from sluice.store.journeys import Journeys

ENTRY_BATCH = 10_000
TIMER_LEAD = timedelta(seconds=1)
"""How long before the first timer of phase 3 the clock lands."""
GIVE_UP = timedelta(minutes=10)
"""How long after the last timer came due phase 3 waits for its send at most."""


@dataclass(frozen=True)
class JourneysBench:
    instances: int
    live_instances: int
    """Live instances in the database once every entry was made."""
    entries_s: float
    entries_per_s: float
    stepped: int
    """Instances advanced in the steps phase (each: its wait, then its send)."""
    steps: int
    """Step log rows the steps phase wrote."""
    sends: int
    steps_s: float
    steps_pipeline_s: float
    """Of ``steps_s``, the time spent in the delivery pipeline (``CoordinatorCore.submit``:
    gates, ledger reservations, audit records, delivery into the outbox)."""
    steps_per_s: float
    sends_per_s: float
    due_rate: int
    timer_seconds: float
    timers: int
    timers_done: int
    """Timers of phase 3 whose send step was committed before it gave up."""
    timer_lag_p50_ms: float
    timer_lag_p99_ms: float
    timer_lag_max_ms: float
    wait_step_lag_p99_ms: float
    """Due time to the commit of the wait's own step row (before the send)."""
    poll_s: float
    baseline_messages: int
    baseline_msgs_per_s: float
    """The delivery pipeline's dry run (``CoordinatorCore.submit``) on as many messages."""
    ratio: float
    """steps_per_s / baseline_msgs_per_s."""
    peak_rss_mb: float
    database_mb: float
    outcomes: dict[str, int]
    """The steps phase's step outcomes and pipeline counts."""


@contextmanager
def _timed(owner: type, name: str, into: list[float]) -> Iterator[None]:
    """Add the time spent in ``owner.name`` to ``into[0]`` while in the block."""
    original = getattr(owner, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            into[0] += time.perf_counter() - started

    setattr(owner, name, timed)
    try:
        yield
    finally:
        setattr(owner, name, original)


def _percentile(values: Sequence[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(values), q)), 1) if values else 0.0


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def _live(engine: Engine) -> int:
    return JourneyReads(engine).counts(JOURNEY_ID)["state"].get(LIVE, 0)


def run_journeys_bench(
    instances: int,
    due_rate: int,
    seconds: float,
    work: Path,
    advance: int = 20_000,
    poll_s: float = 0.5,
    batch: int = 1000,
) -> JourneysBench:
    stepped = max(1, min(advance, instances // 5))
    timers = max(1, round(due_rate * seconds))
    if stepped + timers > instances:
        raise ValueError(
            f"{instances} instances are fewer than the {stepped} advanced plus the "
            f"{timers} timers (due_rate x seconds)"
        )
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    ids = write_customers(work / "customers.parquet", instances)
    url = f"sqlite:///{work / 'journeys.db'}"
    clock = BenchClock()
    db = connect(url)
    spec_doc = journey_spec(work / "customers.parquet", work / "outbox")
    Journeys(db, clock).deploy(JOURNEY_ID, spec_doc, "bench")
    keys = Keyring.of(secrets.token_urlsafe(32), origin="bench")
    orch = Orchestrator(
        OrchestratorConfig(EngineConfig(url, work / "home", batch=batch), poll_s=poll_s),
        keys,
        clock,
    )
    try:
        return _phases(orch, clock, keys, url, ids, instances, due_rate, seconds, stepped, work)
    finally:
        orch.close()
        dispose(url)


def _phases(
    orch: Orchestrator,
    clock: BenchClock,
    keys: Keyring,
    url: str,
    ids: list[str],
    instances: int,
    due_rate: int,
    seconds: float,
    stepped: int,
    work: Path,
) -> JourneysBench:
    engine = orch.engine
    batch = engine.config.batch
    stamped = StampedInstances(engine.engine, clock)
    engine.instances = stamped
    spec = engine.specs[JOURNEY_ID]
    timers = max(1, round(due_rate * seconds))

    # Who comes due when: [0, stepped) at once, the next `timers` one by one from the
    # anchor on, the rest a week from now.
    t0 = clock.now()
    anchor = t0 + timedelta(days=1)
    due: dict[str, datetime] = {}

    def entered_at(i: int) -> datetime:
        if i < stepped:
            return t0 - FIRST_WAIT
        k = i - stepped
        if k < timers:
            at = anchor + timedelta(seconds=k / due_rate)
            due[instance_id(JOURNEY_ID, ids[i], 0)] = at
            return at - FIRST_WAIT
        return t0

    # 1. entries
    entered = 0
    started = time.perf_counter()
    for lo in range(0, instances, ENTRY_BATCH):
        reqs = [
            EntryRequest(ids[i], {"cart_id": f"cart-{i}"}, entered_at(i))
            for i in range(lo, min(lo + ENTRY_BATCH, instances))
        ]
        result = engine.enter(JOURNEY_ID, reqs)
        entered += sum(not v.startswith("refused") for v in result.values())
    entries_s = time.perf_counter() - started
    if entered != instances:
        raise RuntimeError(f"{instances - entered} of {instances} entries were refused")
    live = _live(engine.engine)

    # 2. steps
    total = TickReport()
    pipeline = [0.0]
    started = time.perf_counter()
    with _timed(CoordinatorCore, "submit", pipeline):
        while True:
            report = engine.tick()
            total.add(report)
            if not (report.steps or report.sends):
                break
    steps_s = time.perf_counter() - started
    if total.sends != stepped:
        raise RuntimeError(f"the steps phase sent {total.sends} of {stepped} due instances")

    # 3. timer lag: the orchestrator's loop while `due_rate` timers come due per second
    stamped.watch = due
    stop = threading.Event()
    give_up = anchor + timedelta(seconds=seconds) + GIVE_UP
    clock.jump(anchor - TIMER_LEAD)

    def on_step(_: TickReport) -> None:
        if len(stamped.last) >= timers or clock.now() > give_up:
            stop.set()

    orch.run(stop, on_step)
    ended = clock.now()
    stamped.watch = ()
    lags = [((stamped.last.get(i) or ended) - at).total_seconds() * 1000 for i, at in due.items()]
    wait_lags = [
        ((stamped.first.get(i) or ended) - at).total_seconds() * 1000 for i, at in due.items()
    ]

    # 4. baseline: the pipeline's dry run on as many messages, as the engine batches them
    run_id = "bench-journeys-dry-run"
    core = CoordinatorCore(
        run_id, spec.delivery_spec(), True, url, keys, clock.today(), clock=clock
    )
    drafts = DraftCache(work / "home" / "drafts")
    ctx = SendContext(spec, core.catalog, Profiles(spec.customers), None, clock.today(), drafts)
    send = spec.step(SEND_STEP).send
    assert send is not None
    baseline_s = 0.0
    for lo in range(0, stepped, batch):
        items = [
            Instance(
                instance_id(JOURNEY_ID, c, 0),
                JOURNEY_ID,
                c,
                0,
                in_holdout(spec, c),
                {"cart_id": f"cart-{i}"},
                t0 - FIRST_WAIT,
                SEND_STEP,
                1,
                t0,
                None,
            )
            for i, c in enumerate(ids[lo : min(lo + batch, stepped)], lo)
        ]
        table = candidates(ctx, run_id, send, items)
        started = time.perf_counter()
        core.submit(table)
        baseline_s += time.perf_counter() - started
    core.close()

    steps_per_s = total.steps / steps_s
    baseline_rate = stepped / baseline_s
    return JourneysBench(
        instances=instances,
        live_instances=live,
        entries_s=round(entries_s, 2),
        entries_per_s=round(instances / entries_s),
        stepped=stepped,
        steps=total.steps,
        sends=total.sends,
        steps_s=round(steps_s, 2),
        steps_pipeline_s=round(pipeline[0], 2),
        steps_per_s=round(steps_per_s),
        sends_per_s=round(total.sends / steps_s),
        due_rate=due_rate,
        timer_seconds=seconds,
        timers=timers,
        timers_done=len(stamped.last),
        timer_lag_p50_ms=_percentile(lags, 50),
        timer_lag_p99_ms=_percentile(lags, 99),
        timer_lag_max_ms=round(max(lags), 1),
        wait_step_lag_p99_ms=_percentile(wait_lags, 99),
        poll_s=orch.config.poll_s,
        baseline_messages=stepped,
        baseline_msgs_per_s=round(baseline_rate),
        ratio=round(steps_per_s / baseline_rate, 3),
        peak_rss_mb=_peak_rss_mb(),
        database_mb=round(sum(p.stat().st_size for p in work.glob("journeys.db*")) / 2**20, 1),
        outcomes=dict(sorted(total.counts.items())),
    )
