"""Campaign runs: started once per run id, finished with their funnel."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select, update

from sluice.contracts.clock import SYSTEM_CLOCK, Clock
from sluice.errors import ConflictError
from sluice.store.db import utc
from sluice.store.schema import runs


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    campaign_id: str
    spec: dict[str, Any]
    dry_run: bool
    status: str
    funnel: dict[str, Any] | None
    context: dict[str, Any]
    """What the first start resolved (model versions, decision date): reruns reuse it."""
    started_at: datetime
    finished_at: datetime | None


def spec_digest(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


class Runs:
    def __init__(self, engine: Engine, clock: Clock = SYSTEM_CLOCK) -> None:
        self.engine = engine
        self.clock = clock

    def get(self, run_id: str) -> RunRecord | None:
        with self.engine.connect() as conn:
            r = conn.execute(select(runs).where(runs.c.run_id == run_id)).first()
        if r is None:
            return None
        return RunRecord(
            r.run_id,
            r.campaign_id,
            json.loads(r.spec),
            bool(r.dry_run),
            r.status,
            json.loads(r.funnel) if r.funnel else None,
            json.loads(r.context) if r.context else {},
            utc(r.started_at) or self.clock.now(),
            utc(r.finished_at),
        )

    def start(
        self,
        run_id: str,
        campaign_id: str,
        spec: dict[str, Any],
        dry_run: bool,
        context: dict[str, Any] | None = None,
    ) -> RunRecord:
        """Register the run, or resume it: the same run id must carry the same spec."""
        digest = spec_digest(spec)
        existing = self.get(run_id)
        if existing is not None:
            if existing.dry_run != dry_run:
                kind = "a dry run" if existing.dry_run else "a real run"
                raise ConflictError(
                    f"--run-id: {run_id} was {kind}; use another run id", field="run_id"
                )
            if spec_digest(existing.spec) != digest:
                raise ConflictError(
                    f"--run-id: {run_id} ran with a different campaign spec; "
                    "a run id is bound to its spec",
                    field="run_id",
                )
            with self.engine.begin() as conn:
                conn.execute(
                    update(runs)
                    .where(runs.c.run_id == run_id)
                    .values(status="running", finished_at=None)
                )
            return self.get(run_id) or existing
        now = self.clock.now()
        with self.engine.begin() as conn:
            conn.execute(
                runs.insert().values(
                    run_id=run_id,
                    campaign_id=campaign_id,
                    spec=json.dumps(spec, default=str),
                    spec_digest=digest,
                    dry_run=dry_run,
                    status="running",
                    context=json.dumps(context or {}, default=str),
                    started_at=now,
                )
            )
        record = self.get(run_id)
        assert record is not None
        return record

    def finish(self, run_id: str, funnel: dict[str, Any], status: str = "completed") -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(runs)
                .where(runs.c.run_id == run_id)
                .values(status=status, funnel=json.dumps(funnel), finished_at=self.clock.now())
            )

    def with_canary(self, since: datetime) -> list[str]:
        """Real runs started since ``since`` whose spec tries a canary (guardrails watch)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(runs.c.run_id, runs.c.spec).where(
                    runs.c.started_at >= since, runs.c.dry_run.is_(False)
                )
            ).all()
        return [r.run_id for r in rows if json.loads(r.spec).get("canary")]
