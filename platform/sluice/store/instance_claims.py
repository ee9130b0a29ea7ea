"""Claiming due journey instances with a lease, and committing their moves.

Each move is a compare-and-set on the instance's ``seq`` by its claim's owner, written
with its step log rows in the same transaction (see :mod:`sluice.store.instances`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, bindparam, or_, select, update
from sqlalchemy.sql.dml import Update

from sluice.store.instances import LIVE, Instance, Move, instance_of, step_rows
from sluice.store.schema import journey_instances, journey_members, journey_steps


def _move_statement(release: bool) -> Update:
    """The compare-and-set of one move, built once: executed per move with its values
    (bound parameters), so a commit of many moves compiles nothing."""
    c = journey_instances.c
    values: dict[str, Any] = {
        name: bindparam(f"m_{name}", type_=c[name].type)
        for name in ("state", "step", "due_at", "exit_reason", "seq", "woken_by", "updated_at")
    }
    if release:
        values.update(owner=None, lease_until=None)
    return (
        update(journey_instances)
        .where(
            and_(
                c.instance_id == bindparam("w_instance_id", type_=c.instance_id.type),
                c.seq == bindparam("w_seq", type_=c.seq.type),
                c.state == LIVE,
                c.owner == bindparam("w_owner", type_=c.owner.type),
            )
        )
        .values(values)
    )


_MOVE_KEEP, _MOVE_RELEASE = _move_statement(False), _move_statement(True)
_RELEASE_MEMBER = (
    update(journey_members)
    .where(
        and_(
            journey_members.c.journey_id == bindparam("w_journey_id"),
            journey_members.c.customer_id == bindparam("w_customer_id"),
            journey_members.c.live_instance == bindparam("w_instance_id"),
        )
    )
    .values(live_instance=None)
)


class Instances:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def claim_due(
        self, now: datetime, owner: str, lease_until: datetime, limit: int
    ) -> list[Instance]:
        """Live instances due by ``now`` whose lease is free, stamped as ``owner``'s."""
        free = or_(journey_instances.c.lease_until.is_(None), journey_instances.c.lease_until < now)
        pick = (
            select(journey_instances.c.instance_id)
            .where(and_(journey_instances.c.state == LIVE, journey_instances.c.due_at <= now, free))
            .order_by(journey_instances.c.due_at)
            .limit(limit)
        )
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                pick = pick.with_for_update(skip_locked=True)
            ids = [r[0] for r in conn.execute(pick)]
            if not ids:
                return []
            conn.execute(
                update(journey_instances)
                .where(and_(journey_instances.c.instance_id.in_(ids), free))
                .values(owner=owner, lease_until=lease_until)
            )
            rows = conn.execute(
                select(journey_instances).where(
                    and_(
                        journey_instances.c.instance_id.in_(ids),
                        journey_instances.c.owner == owner,
                        journey_instances.c.lease_until == lease_until,
                    )
                )
            ).all()
        return [instance_of(r) for r in rows]

    def commit(
        self, moves: Sequence[Move], owner: str, now: datetime, keep: Collection[str] = ()
    ) -> list[Move]:
        """Apply moves of ``owner``'s claimed instances in one transaction; returns those
        applied (a move whose instance changed meanwhile, e.g. exited, is dropped).
        Instances in ``keep`` stay claimed (their send is next)."""
        applied: list[Move] = []
        logged: list[dict[str, Any]] = []
        released: list[dict[str, Any]] = []
        with self.engine.begin() as conn:
            for m in moves:
                inst = m.instance
                n = len(m.records)
                ended = m.state != LIVE
                done = conn.execute(
                    _MOVE_KEEP if inst.instance_id in keep else _MOVE_RELEASE,
                    {
                        "w_instance_id": inst.instance_id,
                        "w_seq": inst.seq,
                        "w_owner": owner,
                        "m_state": m.state,
                        "m_step": None if ended else m.step,
                        "m_due_at": None if ended else m.due_at,
                        "m_exit_reason": m.exit_reason,
                        "m_seq": inst.seq + n,
                        "m_woken_by": None if n else inst.woken_by,
                        "m_updated_at": now,
                    },
                )
                if done.rowcount != 1:
                    continue
                logged += step_rows(inst, [(inst.seq + k, r) for k, r in enumerate(m.records)], now)
                if ended:
                    released.append(
                        {
                            "w_journey_id": inst.journey_id,
                            "w_customer_id": inst.customer_id,
                            "w_instance_id": inst.instance_id,
                        }
                    )
                applied.append(m)
            # The step log rows and released memberships of the applied moves: one
            # statement each, in the same transaction as the moves.
            if logged:
                conn.execute(journey_steps.insert(), logged)
            if released:
                conn.execute(_RELEASE_MEMBER, released)
        return applied

    def release(self, ids: Sequence[str], owner: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(journey_instances)
                .where(
                    and_(
                        journey_instances.c.instance_id.in_(list(ids)),
                        journey_instances.c.owner == owner,
                    )
                )
                .values(owner=None, lease_until=None)
            )


__all__ = ["Instances"]
