"""Reading journey instances and their step log: funnels, conversions, what is due next."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, case, func, select

from sluice.store.db import utc
from sluice.store.instances import EXITED, LIVE
from sluice.store.schema import journey_instances, journey_steps


class JourneyReads:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def soonest(self, journey_id: str) -> datetime | None:
        """When the journey's next live instance is due (None: none is live)."""
        with self.engine.connect() as conn:
            at = conn.execute(
                select(func.min(journey_instances.c.due_at)).where(
                    and_(
                        journey_instances.c.journey_id == journey_id,
                        journey_instances.c.state == LIVE,
                    )
                )
            ).scalar()
        return utc(at)

    def counts(self, journey_id: str) -> dict[str, dict[str, int]]:
        """Instances by state, live ones by current step, exited ones by reason."""
        ji = journey_instances

        def by(column: Any, *where: Any) -> dict[str, int]:
            query = select(column, func.count()).where(ji.c.journey_id == journey_id, *where)
            with self.engine.connect() as conn:
                return {str(k): int(n) for k, n in conn.execute(query.group_by(column))}

        return {
            "state": by(ji.c.state),
            "at_step": by(ji.c.step, ji.c.state == LIVE),
            "exited": by(ji.c.exit_reason, ji.c.state == EXITED),
        }

    def step_outcomes(self, journey_id: str) -> list[tuple[str, str, bool, int]]:
        """(step, outcome, holdout, count) over the step log."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    journey_steps.c.step_id,
                    journey_steps.c.outcome,
                    journey_steps.c.holdout,
                    func.count(),
                )
                .where(journey_steps.c.journey_id == journey_id)
                .group_by(journey_steps.c.step_id, journey_steps.c.outcome, journey_steps.c.holdout)
            ).all()
        return [(str(s), str(o), bool(h), int(n)) for s, o, h, n in rows]


def conversion_counts(
    engine: Engine, journey_id: str, event_type: str, until: datetime
) -> dict[bool, tuple[int, int]]:
    """Per arm (holdout or not): instances, and those whose customer had an event of
    ``event_type`` after entering (up to ``until``)."""
    from sluice.store.schema import events

    converted = (
        select(events.c.event_id)
        .where(
            and_(
                events.c.customer_id == journey_instances.c.customer_id,
                events.c.type == event_type,
                events.c.occurred_at >= journey_instances.c.entered_at,
                events.c.occurred_at <= until,
            )
        )
        .exists()
    )
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                journey_instances.c.holdout,
                func.count(),
                func.sum(case((converted, 1), else_=0)),
            )
            .where(journey_instances.c.journey_id == journey_id)
            .group_by(journey_instances.c.holdout)
        ).all()
    return {bool(h): (int(n), int(k or 0)) for h, n, k in rows}


def next_due(engine: Engine) -> datetime | None:
    """The earliest time something is due: a live instance's step or a deferred send."""
    from sluice.store.reservations import DEFERRED
    from sluice.store.schema import deliveries

    with engine.connect() as conn:
        step = conn.execute(
            select(func.min(journey_instances.c.due_at)).where(journey_instances.c.state == LIVE)
        ).scalar()
        send = conn.execute(
            select(func.min(deliveries.c.send_after)).where(deliveries.c.state == DEFERRED)
        ).scalar()
    times = [t for t in (utc(step), utc(send)) if t is not None]
    return min(times) if times else None


__all__ = ["JourneyReads", "conversion_counts", "next_due"]
