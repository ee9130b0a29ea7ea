"""Delivering what quiet hours deferred, for campaigns and journeys alike.

Every run with deferred messages whose time has come gets them promoted and delivered
by a coordinator built from the run's stored spec (its transports, gates and send-time
re-check), the same as a rerun of the run id would; journey runs use the engine's own.
Journey messages left reserved (a channel that was down, a process that died mid-send)
are retried on a timer the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date
from typing import Any

from sluice.channels.unsubscribe import Keyring
from sluice.contracts.campaign import CampaignSpec
from sluice.contracts.clock import Clock
from sluice.coordinator.core import CoordinatorCore
from sluice.store.db import Engine
from sluice.store.journey_sends import due_deferrals, runs_with_pending
from sluice.store.runs import Runs

log = logging.getLogger("sluice.orchestrator")


class DeferredSends:
    def __init__(
        self,
        engine: Engine,
        database_url: str,
        keys: Keyring,
        clock: Clock,
        journey_core: Callable[[str], CoordinatorCore | None],
    ) -> None:
        self.engine, self.database_url, self.keys, self.clock = engine, database_url, keys, clock
        self.journey_core = journey_core
        self._cores: dict[str, CoordinatorCore] = {}

    def _core(self, run_id: str) -> CoordinatorCore | None:
        core = self.journey_core(run_id) or self._cores.get(run_id)
        if core is not None:
            return core
        record = Runs(self.engine, self.clock).get(run_id)
        if record is None or record.dry_run:
            return None
        spec = CampaignSpec.model_validate(record.spec)
        day = record.context.get("decision_date")
        core = CoordinatorCore(
            run_id,
            spec,
            False,
            self.database_url,
            self.keys,
            date.fromisoformat(day) if isinstance(day, str) else self.clock.today(),
            clock=self.clock,
        )
        self._cores[run_id] = core
        return core

    def deliver_due(self) -> dict[str, Any]:
        """Promote and deliver every run's due deferrals; counts per run."""
        out: dict[str, Any] = {}
        for run_id in due_deferrals(self.engine, self.clock.now()):
            core = self._core(run_id)
            if core is None:
                continue
            try:
                out[run_id] = core.resume()
            except Exception:  # one run's failure never stops the others
                log.exception("run %s: delivering deferred messages failed", run_id)
        return out

    def retry_owed(self) -> dict[str, Any]:
        """Deliver journey messages still reserved (a channel that was down, an attempt
        whose process died): each run's coordinator drains what it owes, reconciling
        ambiguous attempts before any resend. Campaign runs are their own driver's."""
        out: dict[str, Any] = {}
        for run_id in runs_with_pending(self.engine):
            if not run_id.startswith("j."):
                continue
            core = self._core(run_id)
            if core is None:
                continue
            try:
                out[run_id] = core.resume()
            except Exception:
                log.exception("run %s: delivering owed messages failed", run_id)
        return out

    def close(self) -> None:
        for core in self._cores.values():
            core.close()
        self._cores.clear()
