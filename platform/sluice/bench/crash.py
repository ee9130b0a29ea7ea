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
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import yaml

from sluice.bench.batch import scratch_env, scratch_settings
from sluice.bench.children import (
    Approvers,
    Proc,
    approve_the_rest,
    coordinator_pid,
    finish,
    mail_seen,
    wait_for_mail,
)
from sluice.contracts.clock import Clock

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


def write_inputs(work: Path, customers: int, clock: Clock) -> None:
    """A synthetic base as of today, its training and audience features, the catalog."""
    from sluice.data import SynthCalendar, SynthConfig, synthesize
    from sluice.features import write_synthetic_features

    cal = SynthCalendar.today(clock)
    data = work / "data"
    synthesize(SynthConfig(customers=customers, end=cal.history_end, seed=41), data)
    for name, cutoff in (("train", cal.train_cutoff), ("audience", cal.score_cutoff)):
        write_synthetic_features(data, cutoff, work / f"{name}.parquet")
    (work / "catalog.yaml").write_text(yaml.safe_dump(CATALOG, sort_keys=False))


def write_spec(work: Path, sink_port: int, status_url: str, review_below: float) -> Path:
    """The campaign: one email offer for everyone; scores under ``review_below`` wait
    for a person."""
    data = work / "data"
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
                "allow_hosts": ["127.0.0.1"],  # the local mail sink (egress guard)
                "concurrency": 4,
                "timeout_s": 5,
            }
        },
        "gates": {
            "brand_safety": None,
            "quiet_hours": None,
            "frequency_cap": {"per_day": 1},
            "confidence": {"score_band": [0.0, review_below]},
        },
        "holdout_pct": 0,
        "batch_size": 100,
    }
    path = work / "crash.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def run_crash_bench(
    work: Path, customers: int, kills: int, database_url: str, seed: int = 7
) -> CrashReport:
    """See the module docstring; ``work`` holds the home, data, mail and logs."""
    import ray

    from sluice.devtools.mailsink import MailSink
    from sluice.registry import Registry
    from sluice.runtime import ensure_ray
    from sluice.store.db import connect
    from sluice.store.reviews import ReviewQueue
    from sluice.training import TrainConfig, train

    started = time.perf_counter()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    run_id = f"crash-bench-{time.strftime('%Y%m%d-%H%M%S')}-{seed}"
    settings = scratch_settings(work / "home").model_copy(update={"database_url": database_url})
    sink = MailSink(work / "mail", reply_delay_s=0.08).start()
    try:
        write_inputs(work, customers, settings.clock)
        trained = train(work / "train.parquet", config=TrainConfig(num_boost_round=40))
        registry = Registry(settings)
        model = registry.register(trained)
        registry.promote(model.version, by="crash-bench")
        # The least likely tenth of the audience waits for a person.
        checked = trained.contract.validate_batch(pq.read_table(work / "audience.parquet"))
        review_below = float(np.quantile(trained.booster.predict(checked.matrix), 0.1))
        spec = write_spec(work, sink.smtp_port, sink.status_url, review_below)
        ensure_ray()
        env = {
            **scratch_env(settings),
            "RAY_ADDRESS": ray.get_runtime_context().gcs_address,
        }
        log = work / "driver.log"
        rng = random.Random(seed)
        by_target: Counter[str] = Counter()
        by_phase: Counter[str] = Counter()
        approvers = Approvers(run_id, database_url, env, work / "approvers.log")
        approvers.thread.start()
        campaign = ["campaign", "run", str(spec), "--run-id", run_id, "--no-progress"]
        driver = Proc(campaign, env, log)
        racers: list[Proc] = []
        mail_at_start, started = mail_seen(sink), time.monotonic()
        to_first_mail: float | None = None
        done = 0
        while done < kills:
            # The schedule: the first kill lands before anything is delivered, every
            # fifth on an approval in flight, the rest at random moments.
            fresh = mail_seen(sink) == mail_at_start
            early = done == 0 or (fresh and rng.random() < 0.3)
            if early:
                # Before this driver delivers anything: start-up, candidates, copy.
                time.sleep(rng.uniform(2.0, to_first_mail or 8.0))
            else:
                wait_for_mail(sink, rng.randint(3, 20), driver, 60)
            if to_first_mail is None and mail_seen(sink) > 0:
                to_first_mail = time.monotonic() - started
            if not driver.alive():
                if driver.wait(5) == 0 and done >= kills // 2:
                    break  # the run finished; later kills would find nothing to kill
                driver = Proc(campaign, env, log)
                mail_at_start = mail_seen(sink)
                continue
            phase = "candidates-copy" if mail_seen(sink) == mail_at_start else "booking-delivery"
            if not racers and rng.random() < 0.15:
                # A second driver resumes the same run id while the first is running.
                racers.append(Proc(campaign, env, work / "racer.log"))
            if early:
                target = rng.choice(["driver", "both"])
            elif done % 5 == 4:
                target = "approval" if approvers.kill() else "coordinator"
            else:
                target = rng.choices(["coordinator", "driver", "both"], weights=[6, 1.5, 1])[0]
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
                mail_at_start = mail_seen(sink)
            done += 1
            by_target[target] += 1
            by_phase["approval" if target == "approval" else phase] += 1
        try:
            finish(driver, campaign, env, log)
            for racer in racers:
                finish(racer, campaign, env, work / "racer.log")
        finally:
            approvers.stop.set()
            approvers.thread.join(timeout=150)
            for proc in (driver, *racers):
                if proc.alive():
                    proc.kill()
        # What still waits for a person is approved now, and approvals that were killed
        # are finished once their lease is over; then one more resume settles whatever
        # a killed coordinator or approval left under a lease.
        approve_the_rest(run_id, database_url, settings.home_dir)
        finish(Proc(campaign, env, log), campaign, env, log)
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
            database=connect(database_url).dialect.name,
            lost_sample=lost[:10],
        )
    finally:
        sink.stop()
