"""Setup for ``sluice bench journeys``: the customers file, the journey, the stamped clock.

The synthetic customers file and the deployed journey spec, the system clock the bench
moves ahead, and the instance store that notes when watched instances' moves commit.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import PrivateAttr

from sluice.contracts.clock import Clock
from sluice.store.db import Engine
from sluice.store.instance_claims import Instances
from sluice.store.instances import Move

JOURNEY_ID = "bench-journeys"
SEND_STEP = "email"
FIRST_WAIT = timedelta(days=7)
ZONES = ("America/New_York", "Europe/Berlin", "Asia/Tokyo", "UTC")
NAMES = ("Ana", "Ben", "Chloe", "Dan", "Eva", "Finn", "Gia", "Hugo")


class BenchClock(Clock):
    """The system clock, which the bench moves ahead (never back) between phases."""

    _ahead: timedelta = PrivateAttr(default_factory=timedelta)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._ahead

    def jump(self, to: datetime) -> None:
        """From now on, read ``to`` now and run on from there."""
        self._ahead = max(self._ahead, to - datetime.now(UTC))


class StampedInstances(Instances):
    """The engine's instance store, noting when the moves of watched instances commit."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        super().__init__(engine)
        self.clock = clock
        self.watch: Collection[str] = ()
        self.first: dict[str, datetime] = {}
        self.last: dict[str, datetime] = {}

    def commit(
        self, moves: Sequence[Move], owner: str, now: datetime, keep: Collection[str] = ()
    ) -> list[Move]:
        applied = super().commit(moves, owner, now, keep)
        if self.watch:
            at = self.clock.now()
            for m in applied:
                iid = m.instance.instance_id
                if iid in self.watch:
                    self.first.setdefault(iid, at)
                    self.last[iid] = at
        return applied


def write_customers(path: Path, n: int) -> list[str]:
    """``n`` reachable customers (valid email, email consent) in a few time zones."""
    ids = [f"c{i:08d}" for i in range(n)]
    idx = np.arange(n)
    table = pa.table(
        {
            "customer_id": pa.array(ids, pa.string()),
            "email": pa.array([f"{c}@example.com" for c in ids], pa.string()),
            "phone": pa.nulls(n, pa.string()),
            "first_name": pa.array(np.array(NAMES)[idx % len(NAMES)], pa.string()),
            "country": pa.array(np.full(n, "US"), pa.string()),
            "time_zone": pa.array(np.array(ZONES)[idx % len(ZONES)], pa.string()),
            "locale": pa.array(np.full(n, "en-US"), pa.string()),
            "consent_email": pa.array(np.ones(n, dtype=bool)),
            "consent_sms": pa.nulls(n, pa.bool_()),
            "consent_push": pa.nulls(n, pa.bool_()),
        }
    )
    pq.write_table(table, path)
    return ids


def journey_spec(customers: Path, outbox: Path) -> dict[str, Any]:
    return {
        "journey_id": JOURNEY_ID,
        "name": "Journey engine bench",
        "customers": str(customers),
        "channels": {"email": {"transport": "outbox", "path": str(outbox)}},
        "gates": {"frequency_cap": None, "quiet_hours": None},
        "entry": {"api": True, "keys": ["cart_id"]},
        "reentry": "once",
        "holdout_pct": 10,
        "steps": [
            {"id": "grace", "wait": {"for": f"{FIRST_WAIT.days}d"}},
            {
                "id": SEND_STEP,
                "send": {"channel": "email", "offer": {"id": "loyalty-double-points"}},
            },
            {"id": "later", "wait": {"for": "2d"}},
            {"id": "done", "exit": {"reason": "done"}},
        ],
    }
