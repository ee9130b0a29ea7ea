"""The audit trail: one record per candidate per run, and the drafts they point to.

Writes are idempotent (a rerun writes nothing twice). The funnel of a run is read back
from here and from the ledger, so it is right even after a crash and a resume.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, func, select, update
from sqlalchemy.engine import Connection

from sluice.contracts.clock import SYSTEM_CLOCK, Clock
from sluice.store.dialect import upsert_insert
from sluice.store.schema import audit, deliveries, drafts


def record_in(
    conn: Connection, rows: Sequence[dict[str, Any]], new_drafts: dict[str, str], now: datetime
) -> None:
    """Insert audit rows and drafts in ``conn``'s transaction, skipping any present."""
    insert = upsert_insert(conn)
    if new_drafts:
        conn.execute(
            insert(drafts).on_conflict_do_nothing(index_elements=["draft_id"]),
            [{"draft_id": k, "draft": v, "created_at": now} for k, v in new_drafts.items()],
        )
    for i in range(0, len(rows), 2_000):
        chunk = [{**r, "created_at": now} for r in rows[i : i + 2_000]]
        conn.execute(
            insert(audit).on_conflict_do_nothing(index_elements=["run_id", "customer_id"]),
            chunk,
        )


@dataclass(frozen=True)
class Settlement:
    """What a person's decision on a reviewed message made of its audit record."""

    run_id: str
    customer_id: str
    outcome: str
    gate: str | None
    reason: str | None
    verdicts: list[dict[str, Any]]
    """Added to the record's verdicts: the review's, and what the gates said again."""
    key: str | None = None
    """The ledger row it was reserved under, if it was."""


def settle_in(conn: Connection, s: Settlement) -> None:
    """Settle a reviewed message's audit record in ``conn``'s transaction."""
    where = and_(audit.c.run_id == s.run_id, audit.c.customer_id == s.customer_id)
    before = conn.execute(select(audit.c.verdicts).where(where)).scalar()
    conn.execute(
        update(audit)
        .where(where)
        .values(
            outcome=s.outcome,
            gate=s.gate,
            reason=s.reason,
            verdicts=json.dumps([*json.loads(before or "[]"), *s.verdicts]),
            idempotency_key=s.key,
        )
    )


class AuditStore:
    def __init__(self, engine: Engine, clock: Clock = SYSTEM_CLOCK) -> None:
        self.engine = engine
        self.clock = clock

    def record(self, rows: Sequence[dict[str, Any]], new_drafts: dict[str, str]) -> None:
        """Insert audit rows and drafts, skipping any already present."""
        if not rows and not new_drafts:
            return
        with self.engine.begin() as conn:
            record_in(conn, rows, new_drafts, self.clock.now())

    def settle_review(self, settlement: Settlement) -> None:
        """A reviewed message's record after a person's decision."""
        with self.engine.begin() as conn:
            settle_in(conn, settlement)

    def recorded(self, run_id: str, customer_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        with self.engine.connect() as conn:
            for i in range(0, len(customer_ids), 500):
                chunk = list(customer_ids[i : i + 500])
                found.update(
                    r[0]
                    for r in conn.execute(
                        select(audit.c.customer_id).where(
                            and_(audit.c.run_id == run_id, audit.c.customer_id.in_(chunk))
                        )
                    )
                )
        return found

    def record_of(self, run_id: str, customer_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    select(audit).where(
                        and_(audit.c.run_id == run_id, audit.c.customer_id == customer_id)
                    )
                )
                .mappings()
                .first()
            )
            if row is None:
                return None
            out = dict(row)
            if out.get("draft_id"):
                text = conn.execute(
                    select(drafts.c.draft).where(drafts.c.draft_id == out["draft_id"])
                ).scalar()
                out["draft"] = json.loads(text) if text else None
            if out.get("idempotency_key"):
                out["delivery"] = (
                    conn.execute(
                        select(
                            deliveries.c.state,
                            deliveries.c.provider_message_id,
                            deliveries.c.error,
                            deliveries.c.send_after,
                        ).where(deliveries.c.idempotency_key == out["idempotency_key"])
                    )
                    .mappings()
                    .first()
                )
            return out

    def funnel(self, run_id: str) -> dict[str, Any]:
        """Counts of the run from the audit trail and the ledger."""
        with self.engine.connect() as conn:
            outcomes: dict[str, int] = dict(
                conn.execute(
                    select(audit.c.outcome, func.count())
                    .where(audit.c.run_id == run_id)
                    .group_by(audit.c.outcome)
                ).all()
            )
            scored = sum(outcomes.values())
            selected = (
                conn.execute(
                    select(func.count()).where(
                        and_(
                            audit.c.run_id == run_id,
                            audit.c.offer_id.is_not(None),
                            audit.c.arm != "holdout",
                        )
                    )
                ).scalar()
                or 0
            )
            drafted = (
                conn.execute(
                    select(func.count()).where(
                        and_(
                            audit.c.run_id == run_id,
                            audit.c.draft_id.is_not(None),
                            audit.c.arm != "holdout",
                        )
                    )
                ).scalar()
                or 0
            )
            rejected: dict[str, dict[str, int]] = {}
            for gate, reason, n in conn.execute(
                select(audit.c.gate, audit.c.reason, func.count())
                .where(and_(audit.c.run_id == run_id, audit.c.outcome == "rejected"))
                .group_by(audit.c.gate, audit.c.reason)
            ):
                rejected.setdefault(gate, {})[reason] = int(n)
            states: dict[str, int] = dict(
                conn.execute(
                    select(deliveries.c.state, func.count())
                    .where(deliveries.c.run_id == run_id)
                    .group_by(deliveries.c.state)
                ).all()
            )
            by_copy = self._by_copy(conn, run_id)
            by_arm: dict[str, int] = dict(
                conn.execute(
                    select(audit.c.arm, func.count())
                    .where(audit.c.run_id == run_id)
                    .group_by(audit.c.arm)
                ).all()
            )
        return {
            "scored": int(scored),
            "selected": int(selected),
            "drafted": int(drafted),
            "holdout": int(outcomes.get("holdout", 0)),
            "no_offer": int(outcomes.get("no_offer", 0)),
            "arm_paused": int(outcomes.get("arm_paused", 0)),
            "rejected": rejected,
            "review": int(outcomes.get("review", 0)),
            "deferred": int(states.get("deferred", 0)) + int(outcomes.get("would_defer", 0)),
            "sent": int(states.get("sent", 0)),
            "failed": int(states.get("failed", 0)),
            "suppressed_at_send": int(states.get("suppressed", 0)),
            "expired_at_send": int(states.get("expired", 0)),
            "pending": int(states.get("reserved", 0)),
            "would_send": int(outcomes.get("would_send", 0)),
            "arms": {str(k): int(v) for k, v in by_arm.items()},
            "copy": by_copy,
        }

    @staticmethod
    def _by_copy(conn: Connection, run_id: str) -> dict[str, dict[str, int]]:
        """Per copy source (``generated``, ``fallback``, ``fixed``) of the drafted
        candidates: how many each audit outcome took, and ``sent``, how many of their
        messages were delivered."""
        out: dict[str, dict[str, int]] = {}
        for source, outcome, n in conn.execute(
            select(audit.c.copy_source, audit.c.outcome, func.count())
            .where(and_(audit.c.run_id == run_id, audit.c.draft_id.is_not(None)))
            .group_by(audit.c.copy_source, audit.c.outcome)
        ):
            out.setdefault(str(source), {})[str(outcome)] = int(n)
        joined = deliveries.join(
            audit,
            and_(
                deliveries.c.run_id == audit.c.run_id,
                deliveries.c.customer_id == audit.c.customer_id,
            ),
        )
        for source, n in conn.execute(
            select(audit.c.copy_source, func.count())
            .select_from(joined)
            .where(and_(deliveries.c.run_id == run_id, deliveries.c.state == "sent"))
            .group_by(audit.c.copy_source)
        ):
            out.setdefault(str(source), {})["sent"] = int(n)
        return out
