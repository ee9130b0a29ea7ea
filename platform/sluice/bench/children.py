"""The child processes of ``sluice bench crash``: campaign drivers, the people who
approve review items, and the helpers that find, wait for and finish them."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from sluice.errors import ConflictError


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
    """People approving review items, one process per decision, in a background thread,
    ``pause_s`` apart as a person works (back to back, each process's start-up would
    take most of a core from the campaign it races); :meth:`kill` SIGKILLs the one in
    flight."""

    def __init__(
        self,
        run_id: str,
        database_url: str,
        env: dict[str, str],
        log: Path,
        pause_s: float = 1.0,
    ) -> None:
        self.run_id, self.database_url, self.env, self.log = run_id, database_url, env, log
        self.pause_s = pause_s
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
                self.stop.wait(self.pause_s)

    def kill(self, patience_s: float = 5.0) -> bool:
        """SIGKILL the approval in flight, waiting up to ``patience_s`` for one."""
        deadline = time.monotonic() + patience_s
        while time.monotonic() < deadline:
            proc = self.current
            if proc is not None and proc.alive():
                proc.kill()
                return True
            time.sleep(0.05)
        return False


def approve_the_rest(run_id: str, database_url: str, home: Path, patience_s: float = 300) -> None:
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
                actions.approve(item.review_id, "crash-bench", database_url, home)
        time.sleep(1.0)
    raise RuntimeError("review items were still waiting after the bench's patience ran out")


def mail_seen(sink: Any) -> int:
    """Delivery attempts the SMTP server has seen so far."""
    with sink.store.lock:
        return int(sum(sink.store.attempts.values()))


def wait_for_mail(sink: Any, more: int, driver: Proc, timeout: float) -> None:
    """Until the SMTP server has ``more`` messages than now, the driver exits, or time
    runs out."""
    start = mail_seen(sink)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and driver.alive():
        if mail_seen(sink) >= start + more:
            return
        time.sleep(0.02)


def finish(driver: Proc, campaign: list[str], env: dict[str, str], log: Path) -> None:
    """Let the run finish; a driver killed at the very end is simply started again."""
    for _ in range(3):
        if driver.wait(900) == 0:
            return
        driver = Proc(campaign, env, log)
    raise RuntimeError(f"the campaign run did not finish; see {log}")
