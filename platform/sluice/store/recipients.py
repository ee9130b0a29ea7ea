"""Who a run reached: its audited recipients (arm, model version, score) and its sends.

Read by the outcome KPIs, the feedback simulator and the rollout scenario; nothing here
writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, and_, func, select

from sluice.store.schema import audit, deliveries


@dataclass(frozen=True)
class Recipient:
    customer_id: str
    arm: str
    model_version: str | None
    score: float | None


def run_recipients(engine: Engine, run_id: str) -> list[Recipient]:
    """Every customer the run audited, with its arm, model version and score."""
    query = select(audit.c.customer_id, audit.c.arm, audit.c.model_version, audit.c.score).where(
        audit.c.run_id == run_id
    )
    with engine.connect() as conn:
        return [
            Recipient(str(cid), str(arm), version, None if score is None else float(score))
            for cid, arm, version, score in conn.execute(query)
        ]


def sent_channels(engine: Engine, run_id: str) -> dict[str, str]:
    """Customer id -> channel of every message of the run that was sent."""
    query = select(deliveries.c.customer_id, deliveries.c.channel).where(
        and_(deliveries.c.run_id == run_id, deliveries.c.state == "sent")
    )
    with engine.connect() as conn:
        return {str(cid): str(channel) for cid, channel in conn.execute(query)}


def sends_since(engine: Engine, campaign_id: str, arm: str, since: datetime) -> int:
    """Messages of the campaign's ``arm`` sent (settled) at or after ``since``."""
    query = select(func.count()).where(
        and_(
            deliveries.c.campaign_id == campaign_id,
            deliveries.c.arm == arm,
            deliveries.c.state == "sent",
            deliveries.c.updated_at >= since,
        )
    )
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())
