"""The orchestrator's loop: events in, journeys on, deferred sends out, schedules kept.

Each :meth:`Orchestrator.step` reads the Redis stream (when configured) into the event
store (which queues what journeys react to), runs one engine tick, delivers due
deferrals, and, on their own timers, re-reads deployed journeys, enters scheduled
journey audiences, starts scheduled campaigns, delivers review items approved through the
admin API and evaluates guardrails. All state is
in the database: a restarted orchestrator carries on where the last one stopped.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from sluice.campaign.schedule import due, scheduled_run_id
from sluice.campaign.spec import load_spec
from sluice.channels.unsubscribe import Keyring
from sluice.contracts.campaign import CampaignSpec
from sluice.contracts.clock import SYSTEM_CLOCK, Clock
from sluice.contracts.feedback import EventReject
from sluice.feedback.ingest import ingest
from sluice.journeys.deferred import DeferredSends
from sluice.journeys.engine import EngineConfig, JourneyEngine, TickReport
from sluice.journeys.entries import EntryRequest
from sluice.review.actions import deliver_approved
from sluice.store.runs import Runs

log = logging.getLogger("sluice.orchestrator")


@dataclass(frozen=True)
class OrchestratorConfig:
    engine: EngineConfig
    redis_url: str | None = None
    stream: str = "sluice:events"
    poll_s: float = 0.5
    """Pause between steps when there was nothing to do."""
    reload_s: float = 5.0
    """How often deployed journeys are re-read (deploy, pause, resume take effect)."""
    guardrails_s: float = 60.0
    """How often the guardrails of runs with a canary (the last 90 days) are evaluated:
    events posted to the back office are only stored, and this is what acts on them."""
    reviews_s: float = 2.0
    """How often review items approved through the admin API are delivered."""
    schedules_s: float = 30.0
    retry_s: float = 30.0
    """How often journey messages still reserved are retried."""
    campaigns: tuple[Path, ...] = ()
    """Campaign specs whose ``schedule:`` the orchestrator keeps."""
    guardrails: Callable[[str], Any] | None = None
    """Evaluates (and acts on) one run's guardrails."""
    campaign_command: Callable[[Path, str], list[str]] = field(
        default_factory=lambda: campaign_run_command
    )
    """The command that runs a scheduled campaign (spec, run id)."""


def campaign_run_command(spec: Path, run_id: str) -> list[str]:
    """``sluice campaign run SPEC --run-id ID`` in this interpreter."""
    return [sys.executable, "-m", "sluice", "campaign", "run", str(spec), "--run-id", run_id]


@dataclass
class Timers:
    last: dict[str, float] = field(default_factory=dict)

    def due(self, name: str, every_s: float) -> bool:
        now = time.monotonic()
        if now - self.last.get(name, -1e18) >= every_s:
            self.last[name] = now
            return True
        return False


class Orchestrator:
    def __init__(self, config: OrchestratorConfig, keys: Keyring, clock: Clock = SYSTEM_CLOCK):
        self.config, self.keys, self.clock = config, keys, clock
        self.engine = JourneyEngine(config.engine, keys, clock)
        self.deferred = DeferredSends(
            self.engine.engine,
            config.engine.database_url,
            keys,
            clock,
            self.engine.core_of,
        )
        self.timers = Timers()
        self.consumer: Any = None
        self.launched: dict[str, subprocess.Popen[bytes]] = {}
        if config.redis_url:
            self.consumer = self._consumer(config.redis_url)

    def _consumer(self, url: str) -> Any:
        import redis

        from sluice.feedback.stream import StreamConsumer

        consumer = StreamConsumer(
            redis.Redis.from_url(url, decode_responses=True),
            self.config.stream,
            ingest=self._ingest,
        )
        consumer.ensure_group()
        return consumer

    def _ingest(self, events: list[dict[str, Any]]) -> Sequence[EventReject]:
        result = ingest(self.engine.engine, events, "stream", self.keys, clock=self.clock)
        return result.rejected

    def step(self) -> TickReport:
        report = TickReport()
        if self.timers.due("reload", self.config.reload_s):
            self.engine.reload()
        if self.consumer is not None:
            polled = self.consumer.poll(count=self.config.engine.batch)
            report.counts["stream_read"] += polled.read
            report.counts["stream_parked"] += polled.parked
        if self.timers.due("schedules", self.config.schedules_s):
            report.counts.update(self.schedules())
        # One round, so the stream is read again before the next batch of steps.
        report.add(self.engine.tick(max_rounds=1))
        for counts in self.deferred.deliver_due().values():
            report.counts.update({f"deferred:{k}": v for k, v in counts.items()})
        if self.timers.due("owed", self.config.retry_s):
            for counts in self.deferred.retry_owed().values():
                report.counts.update({f"owed:{k}": v for k, v in counts.items()})
        if self.timers.due("reviews", self.config.reviews_s):
            approved = deliver_approved(self.config.engine.database_url, self.keys, self.clock)
            report.counts.update({f"review:{k}": v for k, v in approved.items()})
        if self.config.guardrails and self.timers.due("guardrails", self.config.guardrails_s):
            self.check_guardrails()
        return report

    def run(
        self, stop: threading.Event, on_step: Callable[[TickReport], None] | None = None
    ) -> None:
        """Step until ``stop`` is set; idle steps pause ``poll_s``."""
        failures = 0
        while not stop.is_set():
            try:
                report = self.step()
            except Exception:
                # Nothing is lost: unacknowledged stream entries come back, claimed
                # instances return when their lease ends. Back off and carry on.
                failures += 1
                log.exception("orchestrator step failed (%d in a row)", failures)
                stop.wait(min(30.0, self.config.poll_s * 2**failures))
                continue
            failures = 0
            if on_step is not None:
                on_step(report)
            if not (report.events or report.steps or report.sends):
                stop.wait(self.config.poll_s)

    # -- schedules -----------------------------------------------------------------------
    def schedules(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        now = self.clock.now()
        for jid, spec in self.engine.specs.items():
            sched = spec.entry.schedule
            if sched is None or jid not in self.engine.active:
                continue
            subject = f"journey:{jid}"
            last, created = self.engine.journeys.schedule_mark(subject)
            at = due(sched.cron, sched.missed, last, now, created)
            if at is None:
                continue
            table = pq.read_table(sched.audience)
            rows = table.to_pylist()
            reqs = [
                EntryRequest(
                    str(r["customer_id"]),
                    {k: v for k, v in r.items() if k != "customer_id" and v is not None},
                    at,
                    f"schedule:{jid}:{at:%Y%m%dT%H%M}",
                )
                for r in rows
            ]
            result = self.engine.enter(jid, reqs)
            self.engine.journeys.mark_scheduled(subject, at)
            counts[f"scheduled:{jid}"] = sum(not v.startswith("refused") for v in result.values())
        for path in self.config.campaigns:
            counts.update(self._campaign(path, now))
        return counts

    def _campaign(self, path: Path, now: Any) -> dict[str, int]:
        spec: CampaignSpec = load_spec(path, self.config.engine.home)
        if spec.schedule is None:
            return {}
        subject = f"campaign:{spec.campaign_id}"
        running = self.launched.get(subject)
        if running is not None and running.poll() is None:
            return {}
        last, created = self.engine.journeys.schedule_mark(subject)
        at = due(spec.schedule.cron, spec.schedule.missed, last, now, created)
        if at is None:
            return {}
        # The run id is the scheduled time's: started twice (a crash between the launch and
        # the mark), the second start resumes the same run, which delivers exactly once.
        run_id = scheduled_run_id(spec.campaign_id, at)
        started = Runs(self.engine.engine).get(run_id) is not None
        if not started:
            log.info("starting scheduled run %s of %s", run_id, path)
            command = self.config.campaign_command(path, run_id)
            self.launched[subject] = subprocess.Popen(command)
        self.engine.journeys.mark_scheduled(subject, at)
        return {} if started else {f"launched:{spec.campaign_id}": 1}

    # -- guardrails --------------------------------------------------------------------------
    def check_guardrails(self) -> None:
        assert self.config.guardrails is not None
        since = self.clock.now() - timedelta(days=90)
        for run_id in Runs(self.engine.engine).with_canary(since):
            try:
                self.config.guardrails(run_id)
            except Exception:
                log.exception("run %s: guardrail evaluation failed", run_id)

    def close(self) -> None:
        self.deferred.close()
        self.engine.close()
