"""The journey chaos harness: a cart-abandonment journey run by a real orchestrator
process that is SIGKILLed again and again; the world it runs and the oracle that knows
only the inputs are in :mod:`journey_chaos_oracle`.

The orchestrator (``python -m sluice orchestrator run``) is killed at random moments,
0.2 to 2 s after it announced itself (2 to 5 s after two kills that found nothing
changed, so that the run moves on), and restarted each time; the restarts are forked
from a process that has imported Sluice already (:data:`ZYGOTE`). An instance a killed
orchestrator had claimed stays claimed until its lease (5 minutes) runs out, as do the
ledger rows of a delivery cut short (30 s); instead of waiting that long, about half of
the restarts start with Sluice's clock moved ahead past both leases
(``SLUICE_CLOCK_OFFSET``), as if the restart had come that much later; the others find
the killed orchestrator's claims still held. After the last kill one more orchestrator,
its clock ahead of every lease and started cold, runs until no instance is live.

What the harness reads back is compared with the oracle by
:func:`journey_chaos_oracle.check`.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from journey_chaos_oracle import (
    JOURNEY,
    ChaosReport,
    Snapshot,
    World,
    build_world,
    check,
    event_log,
)
from sqlalchemy import func, select

from sluice.channels.unsubscribe import Keyring
from sluice.feedback.ingest import ingest
from sluice.store.db import connect
from sluice.store.journeys import Journeys
from sluice.store.schema import deliveries, journey_inbox, journey_instances

BATCH = 200
"""Instances claimed, and inbox events applied, per orchestrator round."""
LEASE_JUMP = timedelta(minutes=6)
"""Past the instance lease (5 minutes) and the delivery lease (30 s)."""


def child_env(home: Path, database_url: str, key: str) -> dict[str, str]:
    """The orchestrators' environment: this process's without its ``SLUICE_*``, and the
    test's home, database and unsubscribe key in their place."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    env.update(
        SLUICE_HOME=str(home),
        SLUICE_DATABASE_URL=database_url,
        SLUICE_UNSUBSCRIBE_SECRET=key,
        PYTHONUNBUFFERED="1",
    )
    env.pop("RAY_ADDRESS", None)
    return env


def clock(offset: timedelta) -> dict[str, str]:
    """The environment that moves an orchestrator's clock ``offset`` ahead."""
    return {"SLUICE_CLOCK_OFFSET": f"PT{int(offset.total_seconds())}S"}


ORCHESTRATOR = ["orchestrator", "run", "--poll", "0.05", "--batch", str(BATCH), "--no-stream"]
ZYGOTE = r"""
import json, os, runpy, sys
import sluice.cli.app, sluice.cli.orchestrator_cmd, sluice.orchestrator.loop
import sluice.registry.registry, sluice.coordinator.core, sluice.journeys.engine
args = sys.argv[1:]
print("zygote", flush=True)
for line in sys.stdin:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)  # reap the children killed so far
        except ChildProcessError:
            break
        if pid == 0:
            break
    order = json.loads(line)
    pid = os.fork()
    if pid == 0:
        log = os.open(order["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.environ.update(order["env"])
        sys.argv = ["sluice", *args]
        code = 0
        try:
            runpy.run_module("sluice", run_name="__main__", alter_sys=True)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)
    print(pid, flush=True)
"""
"""Starts ``python -m sluice <args>`` processes warm: it imports Sluice once (seconds on
a small machine) and forks a child per order, which runs the module exactly as
``python -m sluice`` does, with the order's environment and its output in the order's
log. Twenty restarts then cost twenty forks, not two minutes of imports."""


class Zygote:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", ZYGOTE, *ORCHESTRATOR],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
            )
        assert self._line() == "zygote", log.read_text()

    def _line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().decode().strip()

    def start(self, env: dict[str, str], log: Path) -> Child:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"env": env, "log": str(log)}).encode() + b"\n")
        self.proc.stdin.flush()
        return Child(int(self._line()), log)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def _running(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie, killed and not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


@dataclass
class Child:
    """An orchestrator the zygote forked."""

    pid: int
    log: Path

    def ready(self, timeout: float) -> bool:
        """Whether it announced itself (its engine built) within ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log.exists() and b"orchestrator: database" in self.log.read_bytes():
                return True
            if not _running(self.pid):
                return False
            time.sleep(0.01)
        return False

    def tail(self) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"{self.log}:\n{text[-4000:]}"

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _running(self.pid) and time.monotonic() < deadline:
            time.sleep(0.005)
        assert not _running(self.pid), f"orchestrator {self.pid} survived SIGKILL"


def live_count(engine: Any) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(journey_instances)
                .where(journey_instances.c.state == "live")
            ).scalar_one()
        )


def inbox_size(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(journey_inbox)).scalar_one())


def snapshot(engine: Any) -> Snapshot:
    with engine.connect() as conn:
        sent = dict(
            conn.execute(
                select(deliveries.c.channel, func.count())
                .where(deliveries.c.campaign_id == JOURNEY)
                .group_by(deliveries.c.channel)
            ).all()
        )
    return Snapshot(
        inbox_size(engine), live_count(engine), sent.get("email", 0), sent.get("sms", 0)
    )


def run_chaos(
    work: Path, database_url: str, customers: int, kills: int, seed: int, deadline_s: float
) -> tuple[World, ChaosReport]:
    started = time.monotonic()
    rng = random.Random(seed)
    work.mkdir(parents=True, exist_ok=True)
    home = work / "home"
    world = build_world(work, customers, rng)
    key = secrets.token_hex(32)
    engine = connect(database_url)
    Journeys(engine).deploy(world.spec.journey_id, world.spec.public(), "chaos-test")
    now = datetime.now(UTC)
    events = event_log(world, now)
    # Customer events and outcome events (the opens) in separate calls: one batch that
    # mixes them fails to store (see the test module's docstring).
    for kind in (False, True):
        part = [e for e in events if (e["type"] == "open") is kind]
        result = ingest(engine, part, "chaos-test", Keyring.of(key))
        assert not result.rejected and result.accepted == len(part), result
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    env = child_env(home, database_url, key)
    offset = timedelta(0)
    snapshots: list[Snapshot] = []
    jumps = 0
    zygote = Zygote(env, logs / "zygote.log")
    child: Child | None = None
    try:
        for k in range(kills):
            child = zygote.start(clock(offset), logs / f"orchestrator-{k:02d}.log")
            assert child.ready(60), child.tail()
            # A random moment 0.2 to 2 s in; after two kills in a row that found nothing
            # changed (a slow first batch, rolled back each time), 2 to 5 s, so that the
            # run moves on and the kills spread over its phases.
            stalled = len(snapshots) >= 2 and snapshots[-1] == snapshots[-2]
            time.sleep(rng.uniform(2.0, 5.0) if stalled else rng.uniform(0.2, 2.0))
            snapshots.append(snapshot(engine))
            child.kill()
            # About half of the restarts come "later": past every lease the killed
            # orchestrator held (the others find its claims still held).
            if rng.random() < 0.5:
                offset += LEASE_JUMP
                jumps += 1
    finally:
        if child is not None:
            child.kill()
        zygote.close()
    # The last orchestrator, started cold as `python -m sluice orchestrator run` with its
    # clock past every lease, runs until nothing is live.
    offset += LEASE_JUMP
    settle = time.monotonic()
    log = logs / "orchestrator-last.log"
    with log.open("wb") as out:
        last = subprocess.Popen(
            [sys.executable, "-m", "sluice", *ORCHESTRATOR],
            env={**env, **clock(offset)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        # Announced (its signal handlers set) before anything else is judged.
        assert Child(last.pid, log).ready(120), Child(last.pid, log).tail()
        end = time.monotonic() + deadline_s
        while time.monotonic() < end and (live_count(engine) or inbox_size(engine)):
            time.sleep(0.25)
        last.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            last.wait(60)
    finally:
        if last.poll() is None:
            last.kill()
            last.wait(10)
    report = ChaosReport(
        database=engine.dialect.name,
        customers=customers,
        kills=kills,
        jumps=jumps,
        snapshots=snapshots,
        expected=len(world.expected()),
        delivered=0,
        seconds=round(time.monotonic() - started, 1),
        settle_seconds=round(time.monotonic() - settle, 1),
        last_exit=last.returncode,
    )
    check(world, engine, report)
    return world, report
