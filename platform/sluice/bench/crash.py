"""``sluice bench crash``: SIGKILL a campaign again and again, then ask an oracle.

A real campaign (``python -m sluice campaign run`` drivers on a Ray cluster, the run's
coordinator actor, people approving review items in their own processes) delivers email
into a local SMTP server that holds each ``250`` back for a moment. At random moments the
bench SIGKILLs the driver, the coordinator, both, or an approval in flight, across every
phase of the run (candidates, copy, booking, delivery, approval), and now and then starts
a second driver that resumes the same run while the first is still at it; then it lets
the run finish, approves what still waits for a person, and resumes once more.

The **oracle** is independent of Sluice's own records: it computes who must get exactly
one email from the inputs alone (the campaign has one email-only offer open to every
score, no holdout and no quiet hours, so the expected recipients are the audience's
customers with a valid address and granted email consent), and compares that with what
the SMTP server actually received. ``duplicates`` (messages beyond one per recipient)
and ``lost`` (expected recipients who got nothing) must both be 0.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml

from sluice.errors import ConflictError

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
CATALOG = {
    "name": "crash",
    "offers": [
        {
            "offer_id": "season-notes",
            "name": "Season notes",
            "product": "Sluice Outdoors season notes",
            "value": 1.0,
            "valid_from": "+0d",
            "valid_until": "+30d",
            "url": "https://shop.example.com/notes",
            "channels": ["email"],
            "min_score": 0.0,
            "fallback_copy": {
                "email": {
                    "subject": "{first_name}, the season notes are out",
                    "preheader": "What is new on the trail",
                    "body": "Hi {first_name},\n\nOur season notes are out.\n",
                    "cta": "Read the notes",
                }
            },
        }
    ],
}


@dataclass
class CrashReport:
    kills: int
    by_target: dict[str, int]
    by_phase: dict[str, int]
    expected: int
    received: int
    duplicates: int
    lost: int
    unexpected: int
    reviewed: int
    seconds: float
    database: str
    lost_sample: list[str] = field(default_factory=list)


def expected_recipients(features: Path, customers: Path) -> set[str]:
    """The oracle: every audience customer with a valid email address and granted email
    consent gets exactly one email (see the module docstring)."""
    audience = set(pq.read_table(features, columns=["customer_id"]).column(0).to_pylist())
    profiles = pq.read_table(customers, columns=["customer_id", "email", "consent_email"])
    return {
        p["customer_id"]
        for p in profiles.to_pylist()
        if p["customer_id"] in audience
        and p["email"]
        and EMAIL.match(p["email"])
        and p["consent_email"] is True
    }


def write_inputs(work: Path, customers: int, sink_port: int, status_url: str) -> Path:
    """A synthetic base as of today, its audience features, and the campaign spec."""
    from sluice.data import SynthCalendar, SynthConfig, synthesize
    from sluice.data.population import US_PER_DAY, day_us
    from sluice.features import build_features, load_synthetic
    from sluice.settings import get_settings

    cal = SynthCalendar.today(get_settings().clock)
    data = work / "data"
    synthesize(SynthConfig(customers=customers, end=cal.history_end, seed=41), data)
    for name, cutoff in (("train", cal.train_cutoff), ("audience", cal.score_cutoff)):
        c = day_us(cutoff)
        built = build_features(load_synthetic(data, c, c + 90 * US_PER_DAY), cutoff)
        pq.write_table(built.table, work / f"{name}.parquet")
    (work / "catalog.yaml").write_text(yaml.safe_dump(CATALOG, sort_keys=False))
    spec = {
        "campaign_id": "crash-bench",
        "name": "Crash bench",
        "audience": {
            "features": str(work / "audience.parquet"),
            "customers": str(data / "customers.parquet"),
        },
        "offers": str(work / "catalog.yaml"),
        "channels": {
            "email": {
                "transport": "smtp",
                "port": sink_port,
                "reconcile_url": status_url,
                "concurrency": 4,
                "timeout_s": 5,
            }
        },
        "gates": {
            "brand_safety": None,
            "quiet_hours": None,
            "frequency_cap": {"per_day": 1},
            "confidence": {"score_band": [0.0, 0.04]},  # the least likely wait for a person
        },
        "holdout_pct": 0,
        "batch_size": 100,
    }
    path = work / "crash.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


class Proc:
    """A ``python -m sluice ...`` child process, logged, killable."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sluice", *args], env=env, stdout=self.log, stderr=self.log
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.wait(30)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.log.close()


def coordinator_pid(run_id: str) -> int | None:
    import ray

    from sluice.coordinator.actor import NAMESPACE, actor_name

    api: Any = ray
    try:
        actor = api.get_actor(actor_name(run_id), namespace=NAMESPACE)
        return int(api.get(actor.pid.remote(), timeout=10))
    except (ValueError, ray.exceptions.RayError):
        return None


class Approvers:
    """People approving review items, one process per decision, in a background thread;
    :meth:`kill` SIGKILLs the one in flight."""

    def __init__(self, run_id: str, database_url: str, env: dict[str, str], log: Path) -> None:
        self.run_id, self.database_url, self.env, self.log = run_id, database_url, env, log
        self.current: Proc | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        from sluice.store.db import connect
        from sluice.store.reviews import ReviewQueue

        queue = ReviewQueue(connect(self.database_url))
        while not self.stop.is_set():
            items = queue.list(self.run_id, limit=5)
            if not items:
                self.stop.wait(0.3)
                continue
            for item in items:
                if self.stop.is_set():
                    return
                self.current = Proc(
                    ["review", "approve", item.review_id, "--by", "crash-bench"],
                    self.env,
                    self.log,
                )
                self.current.wait(120)
                self.current = None

    def kill(self) -> bool:
        proc = self.current
        if proc is None or not proc.alive():
            return False
        proc.kill()
        return True


def run_crash_bench(
    work: Path, customers: int, kills: int, database_url: str, seed: int = 7
) -> CrashReport:
    """See the module docstring; ``work`` holds the home, data, mail and logs."""
    import ray

    from sluice.devtools.mailsink import MailSink
    from sluice.registry import Registry
    from sluice.runtime import ensure_ray
    from sluice.settings import SluiceSettings
    from sluice.store.db import connect
    from sluice.store.reviews import ReviewQueue
    from sluice.training import TrainConfig, train

    started = time.perf_counter()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    run_id = f"crash-bench-{time.strftime('%Y%m%d-%H%M%S')}-{seed}"
    settings = SluiceSettings(home=work / "home", database_url=database_url)
    sink = MailSink(work / "mail", reply_delay_s=0.03).start()
    try:
        spec = write_inputs(work, customers, sink.smtp_port, sink.status_url)
        registry = Registry(settings)
        model = registry.register(
            train(work / "train.parquet", config=TrainConfig(num_boost_round=40))
        )
        registry.promote(model.version, by="crash-bench")
        ensure_ray()
        env = {
            **_base_env(),
            "SLUICE_HOME": str(settings.home_dir),
            "SLUICE_DATABASE_URL": database_url,
            "RAY_ADDRESS": ray.get_runtime_context().gcs_address,
            "COLUMNS": "120",
        }
        log = work / "driver.log"
        rng = random.Random(seed)
        by_target: Counter[str] = Counter()
        by_phase: Counter[str] = Counter()
        engine = connect(database_url)
        approvers = Approvers(run_id, database_url, env, work / "approvers.log")
        approvers.thread.start()
        campaign = ["campaign", "run", str(spec), "--run-id", run_id, "--no-progress"]
        driver = Proc(campaign, env, log)
        racers: list[Proc] = []
        done = 0
        while done < kills:
            time.sleep(rng.uniform(0.5, 4.0))
            if not driver.alive():
                if driver.wait(5) == 0 and done >= kills // 2:
                    break  # the run finished; later kills would find nothing to kill
                driver = Proc(campaign, env, log)
                continue
            phase = _phase(engine, run_id)
            if not racers and rng.random() < 0.15:
                # A second driver resumes the same run id while the first is running.
                racers.append(Proc(campaign, env, work / "racer.log"))
            target = rng.choice(["driver", "coordinator", "both", "approval"])
            if target == "approval" and not approvers.kill():
                continue
            if target in ("coordinator", "both"):
                pid = coordinator_pid(run_id)
                if pid is None:
                    target = "driver"  # candidates or copy: no coordinator yet
                else:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            if target in ("driver", "both"):
                driver.kill()
                driver = Proc(campaign, env, log)
            done += 1
            by_target[target] += 1
            by_phase["approval" if target == "approval" else phase] += 1
        _finish(driver, campaign, env, log)
        for racer in racers:
            _finish(racer, campaign, env, work / "racer.log")
        approvers.stop.set()
        approvers.thread.join(timeout=150)
        # What still waits for a person is approved now, and approvals that were killed
        # are finished once their lease is over; then one more resume settles whatever
        # a killed coordinator or approval left under a lease.
        _approve_the_rest(run_id, database_url)
        _finish(Proc(campaign, env, log), campaign, env, log)
        reviewed = len(ReviewQueue(connect(database_url)).list(run_id, None, 100_000))
        expected = expected_recipients(work / "audience.parquet", work / "data/customers.parquet")
        got = Counter(
            str(m["X-Sluice-Customer"])
            for m in sink.store.messages()
            if m["X-Sluice-Run"] == run_id
        )
        duplicates = sum(n - 1 for n in got.values()) + sum(
            n - 1 for n in sink.store.attempts.values() if n > 1
        )
        lost = sorted(expected - set(got))
        return CrashReport(
            kills=done,
            by_target=dict(by_target),
            by_phase=dict(by_phase),
            expected=len(expected),
            received=len(got),
            duplicates=duplicates,
            lost=len(lost),
            unexpected=len(set(got) - expected),
            reviewed=reviewed,
            seconds=round(time.perf_counter() - started, 1),
            database=engine.dialect.name,
            lost_sample=lost[:10],
        )
    finally:
        sink.stop()


def _approve_the_rest(run_id: str, database_url: str, patience_s: float = 300) -> None:
    from sluice.review import actions
    from sluice.store.db import connect
    from sluice.store.reviews import APPROVED, PENDING, ReviewQueue

    queue = ReviewQueue(connect(database_url))
    deadline = time.monotonic() + patience_s
    while time.monotonic() < deadline:
        waiting = [
            i
            for i in queue.list(run_id, None, 100_000)
            if i.status == PENDING or (i.status == APPROVED and i.result is None)
        ]
        if not waiting:
            return
        for item in waiting:
            with contextlib.suppress(ConflictError):  # an interrupted one, lease still live
                actions.approve(item.review_id, "crash-bench", database_url)
        time.sleep(1.0)
    raise RuntimeError("review items were still waiting after the bench's patience ran out")


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}


def _phase(engine: Any, run_id: str) -> str:
    """Where the run is: candidates/copy (nothing booked yet) or delivery."""
    from sluice.store.ledger import Ledger

    counts = Ledger(engine).counts(run_id)
    if not counts:
        return "candidates-copy"
    return "delivery" if counts.get("sent") else "booking"


def _finish(driver: Proc, campaign: list[str], env: dict[str, str], log: Path) -> None:
    """Let the run finish; a driver killed at the very end is simply started again."""
    for _ in range(3):
        if driver.wait(900) == 0:
            return
        driver = Proc(campaign, env, log)
    raise RuntimeError(f"the campaign run did not finish; see {log}")
