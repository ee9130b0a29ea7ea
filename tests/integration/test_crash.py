"""Crash safety: SIGKILL the coordinator and the campaign driver while messages are being
delivered, again and again, then finish the run: every approved email reaches the SMTP
server exactly once, nothing is left reserved, and nothing approved is lost.

The driver is a real ``python -m sluice campaign run`` process attached to the session's
cluster; the coordinator is the detached actor it creates. The mail sink holds each
``250`` back for a moment after storing the message, so many kills land in the window
where the sender cannot know whether its message arrived.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sluice.coordinator.actor import NAMESPACE, actor_name
from sluice.devtools.mailsink import MailSink
from sluice.registry import VersionInfo
from sluice.store import connect
from sluice.store.ledger import Ledger

KILLS = 12
RUN_ID = "crash-1"


@pytest.fixture
def slow_sink(tmp_path: Path) -> Iterator[MailSink]:
    s = MailSink(tmp_path / "mail", reply_delay_s=0.03).start()
    yield s
    s.stop()


def run_emails(sink: MailSink) -> dict[str, int]:
    """Idempotency key (from the Message-ID) -> delivery attempts; the sink is this test's."""
    with sink.store.lock:
        return {mid.strip("<>").split("@")[0]: n for mid, n in sink.store.attempts.items()}


class Driver:
    def __init__(self, spec: Path, env: dict[str, str], log: Path) -> None:
        self.log = log.open("ab")
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "sluice", "campaign", "run", str(spec)),
                *("--run-id", RUN_ID, "--no-progress"),
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.log.close()

    def wait(self, timeout: float) -> int:
        rc = self.proc.wait(timeout=timeout)
        self.log.close()
        return rc


def coordinator_pid(timeout: float = 60.0) -> int | None:
    import ray

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            actor = ray.get_actor(actor_name(RUN_ID), namespace=NAMESPACE)
            return int(ray.get(actor.pid.remote(), timeout=10))
        except (ValueError, ray.exceptions.RayError):
            time.sleep(0.2)
    return None


def wait_for_progress(sink: MailSink, driver: Driver, at_least: int, timeout: float) -> bool:
    """Wait until this run has ``at_least`` more messages in the sink; False if the
    driver finished (or the time ran out) first."""
    start = sum(run_emails(sink).values())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(run_emails(sink).values()) >= start + at_least:
            return True
        if driver.proc.poll() is not None:
            return False
        time.sleep(0.01)
    return False


def test_sigkill_coordinator_and_driver_during_delivery_sends_each_message_exactly_once(
    champion: VersionInfo,
    synth_dir: Path,
    features_dir: Path,
    slow_sink: MailSink,
    tmp_path: Path,
) -> None:
    import ray

    database_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    spec: dict[str, Any] = {
        "campaign_id": "crash",
        "name": "crash",
        "audience": {
            "features": str(features_dir / "audience.parquet"),
            "customers": str(synth_dir / "customers.parquet"),
            "limit": 3_000,
        },
        "channels": {
            "email": {
                "transport": "smtp",
                "port": slow_sink.smtp_port,
                "reconcile_url": slow_sink.status_url,
                "concurrency": 4,
                # A killed coordinator's claims are leases; a short relay timeout keeps
                # them short (a minute), so the final resume reconciles them soon.
                "timeout_s": 5,
            }
        },
        "gates": {"frequency_cap": {"per_day": 2}, "quiet_hours": None},
        "holdout_pct": 5,
        "batch_size": 200,
    }
    spec_path = tmp_path / "crash.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    env = {
        **os.environ,
        "RAY_ADDRESS": ray.get_runtime_context().gcs_address,
        "SLUICE_DATABASE_URL": database_url,
    }
    rng = random.Random(int(os.environ.get("SLUICE_CRASH_SEED", "20261121")))
    log = tmp_path / "driver.log"

    kills: list[str] = []
    driver = Driver(spec_path, env, log)
    while len(kills) < KILLS:
        if not wait_for_progress(slow_sink, driver, rng.randint(1, 25), timeout=120):
            break
        target = rng.choice(["coordinator", "driver", "both"])
        if target in ("coordinator", "both"):
            pid = coordinator_pid()
            assert pid is not None, "the coordinator did not come back"
            os.kill(pid, signal.SIGKILL)
        if target in ("driver", "both"):
            driver.kill()
            driver = Driver(spec_path, env, log)
        kills.append(target)
    assert len(kills) >= 10, f"the run finished after only {len(kills)} kills: {kills}"
    killed = {part for k in kills for part in (("coordinator", "driver") if k == "both" else (k,))}
    assert killed == {"coordinator", "driver"}, kills
    assert driver.wait(timeout=300) == 0, log.read_text()[-4000:]
    funnel = json.loads(log.read_text().strip().splitlines()[-1])

    ledger = Ledger(connect(database_url))
    rows = ledger.rows(RUN_ID)
    states = {r.state for r in rows}
    assert states == {"sent"}, f"rows not settled: {ledger.counts(RUN_ID)}"
    received = run_emails(slow_sink)
    # Exactly once: one delivery attempt per message, and one message per sent row.
    assert all(n == 1 for n in received.values()), {m: n for m, n in received.items() if n > 1}
    assert sorted(received) == sorted(r.idempotency_key for r in rows)
    assert funnel["sent"] == len(rows) and funnel["failed"] == 0
    # Nothing lost: everything the gates approved was delivered, as in an uninterrupted run.
    approved = funnel["selected"] - sum(
        n for reasons in funnel["rejected"].values() for n in reasons.values()
    )
    assert funnel["sent"] == approved - funnel["review"] - funnel["deferred"]
    assert funnel["sent"] > 300
