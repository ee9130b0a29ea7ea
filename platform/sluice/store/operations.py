"""The operations log: who approved, promoted, rolled back, paused or resumed what, and why."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from sluice.contracts.clock import SYSTEM_CLOCK, Clock
from sluice.store.db import utc
from sluice.store.schema import operations


@dataclass(frozen=True)
class Operation:
    kind: str
    subject: str
    actor: str
    detail: dict[str, Any]
    at: datetime


class OperationsLog:
    def __init__(self, engine: Engine, clock: Clock = SYSTEM_CLOCK) -> None:
        self.engine = engine
        self.clock = clock

    def record(self, kind: str, subject: str, actor: str, detail: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                operations.insert().values(
                    kind=kind,
                    subject=subject,
                    actor=actor,
                    detail=json.dumps(detail, default=str, sort_keys=True),
                    at=self.clock.now(),
                )
            )

    def entries(self, subject: str | None = None) -> list[Operation]:
        query = select(operations).order_by(operations.c.id)
        if subject is not None:
            query = query.where(operations.c.subject == subject)
        with self.engine.connect() as conn:
            return [
                Operation(r.kind, r.subject, r.actor, json.loads(r.detail), utc(r.at) or r.at)
                for r in conn.execute(query)
            ]
