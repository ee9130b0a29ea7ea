"""Incidents opened by guardrails, and the paused/active state of campaign arms.

A guardrail that fires pauses the arm and opens the incident in one transaction (a
second evaluation of the same run and guardrail finds the open incident and does
nothing). Only a person resolves an incident and, if they choose, resumes the arm.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, select, update

from sluice.contracts.clock import SYSTEM_CLOCK, Clock
from sluice.contracts.feedback import Incident
from sluice.errors import ConflictError, NotFoundError
from sluice.store.db import utc
from sluice.store.dialect import upsert_insert
from sluice.store.schema import arm_states, incidents

PAUSED, ACTIVE = "paused", "active"


def _incident(r: Any) -> Incident:
    return Incident(
        incident_id=r.incident_id,
        campaign_id=r.campaign_id,
        run_id=r.run_id,
        arm=r.arm,
        guardrail=r.guardrail,
        status=r.status,
        opened_at=utc(r.opened_at) or r.opened_at,
        evidence=json.loads(r.evidence),
        actions=json.loads(r.actions),
        resolved_by=r.resolved_by,
        resolved_at=utc(r.resolved_at),
        note=r.note,
    )


class Incidents:
    def __init__(self, engine: Engine, clock: Clock = SYSTEM_CLOCK) -> None:
        self.engine = engine
        self.clock = clock

    def open_for(self, run_id: str, guardrail: str) -> Incident | None:
        with self.engine.connect() as conn:
            r = conn.execute(
                select(incidents).where(
                    and_(
                        incidents.c.run_id == run_id,
                        incidents.c.guardrail == guardrail,
                        incidents.c.status == "open",
                    )
                )
            ).first()
        return _incident(r) if r is not None else None

    def open(
        self,
        campaign_id: str,
        run_id: str,
        arm: str,
        guardrail: str,
        evidence: dict[str, Any],
        actions: list[str],
    ) -> Incident:
        """Open an incident and pause ``arm`` of the campaign, together."""
        incident_id = f"inc-{uuid.uuid4().hex[:12]}"
        now = self.clock.now()
        with self.engine.begin() as conn:
            conn.execute(
                incidents.insert().values(
                    incident_id=incident_id,
                    campaign_id=campaign_id,
                    run_id=run_id,
                    arm=arm,
                    guardrail=guardrail,
                    status="open",
                    evidence=json.dumps(evidence, default=str, sort_keys=True),
                    actions=json.dumps(actions),
                    opened_at=now,
                )
            )
            _set_arm(conn, campaign_id, arm, PAUSED, incident_id, f"guardrail:{guardrail}", now)
        return self.get(incident_id)

    def add_action(self, incident_id: str, action: str) -> None:
        current = self.get(incident_id)
        with self.engine.begin() as conn:
            conn.execute(
                update(incidents)
                .where(incidents.c.incident_id == incident_id)
                .values(actions=json.dumps([*current.actions, action]))
            )

    def get(self, incident_id: str) -> Incident:
        with self.engine.connect() as conn:
            r = conn.execute(
                select(incidents).where(incidents.c.incident_id == incident_id)
            ).first()
        if r is None:
            raise NotFoundError(f"no incident {incident_id!r}", field="incident_id")
        return _incident(r)

    def list(self, campaign_id: str | None = None, status: str | None = None) -> list[Incident]:
        query = select(incidents).order_by(incidents.c.opened_at)
        if campaign_id:
            query = query.where(incidents.c.campaign_id == campaign_id)
        if status:
            query = query.where(incidents.c.status == status)
        with self.engine.connect() as conn:
            return [_incident(r) for r in conn.execute(query)]

    def resolve(self, incident_id: str, by: str, note: str | None, resume: bool) -> Incident:
        """A person closes the incident; ``resume`` makes the paused arm active again."""
        incident = self.get(incident_id)
        if incident.status != "open":
            raise ConflictError(
                f"incident {incident_id} is already {incident.status}", field="incident_id"
            )
        now = self.clock.now()
        with self.engine.begin() as conn:
            conn.execute(
                update(incidents)
                .where(incidents.c.incident_id == incident_id)
                .values(status="resolved", resolved_by=by, resolved_at=now, note=note)
            )
            if resume:
                _set_arm(conn, incident.campaign_id, incident.arm, ACTIVE, incident_id, by, now)
        return self.get(incident_id)


class ArmStates:
    def __init__(self, engine: Engine, clock: Clock = SYSTEM_CLOCK) -> None:
        self.engine = engine
        self.clock = clock

    def paused(self, campaign_id: str) -> dict[str, str | None]:
        """Paused arms of the campaign, with the incident that paused each."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(arm_states.c.arm, arm_states.c.incident_id).where(
                    and_(arm_states.c.campaign_id == campaign_id, arm_states.c.status == PAUSED)
                )
            )
            return {str(arm): incident for arm, incident in rows}


def _set_arm(
    conn: Any, campaign_id: str, arm: str, status: str, incident_id: str, by: str, now: datetime
) -> None:
    values = {"status": status, "incident_id": incident_id, "changed_by": by, "changed_at": now}
    stmt = upsert_insert(conn)(arm_states).values(campaign_id=campaign_id, arm=arm, **values)
    conn.execute(stmt.on_conflict_do_update(index_elements=["campaign_id", "arm"], set_=values))
