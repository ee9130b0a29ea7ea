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


def _move_statement(release: bool, ended: bool) -> Update:
    """The compare-and-set of one move, built once: executed per move with its values
    (bound parameters), so a commit of many moves compiles nothing. A move that leaves
    its instance live does not write ``state`` (nor the indexes that hold it)."""
    c = journey_instances.c
    names = ["step", "due_at", "seq", "woken_by", "updated_at"]
    if ended:
        names += ["state", "exit_reason"]
    values: dict[str, Any] = {name: bindparam(f"m_{name}", type_=c[name].type) for name in names}
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


_MOVES = {
    (kept, ended): _move_statement(release=not kept, ended=ended)
    for kept in (True, False)
    for ended in (True, False)
}
"""By (stays claimed, ends the instance)."""
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


class _ChangedError(Exception):
    """A move of a batch found its instance changed: the batch goes one move at a time."""


def _move_values(m: Move, owner: str, now: datetime) -> dict[str, Any]:
    inst = m.instance
    n = len(m.records)
    ended = m.state != LIVE
    return {
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
    }


def _due_order(i: Instance) -> tuple[datetime, str]:
    assert i.due_at is not None  # a live, claimed instance is due
    return i.due_at, i.instance_id


class Instances:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def claim_due(
        self, now: datetime, owner: str, lease_until: datetime, limit: int
    ) -> list[Instance]:
        """Live instances due by ``now`` whose lease is free, stamped as ``owner``'s: one
        statement picks the earliest due, stamps them and returns them."""
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
            rows = conn.execute(
                update(journey_instances)
                .where(and_(journey_instances.c.instance_id.in_(pick), free))
                .values(owner=owner, lease_until=lease_until)
                .returning(*journey_instances.c)
            ).all()
        return sorted((instance_of(r) for r in rows), key=_due_order)

    def commit(
        self, moves: Sequence[Move], owner: str, now: datetime, keep: Collection[str] = ()
    ) -> list[Move]:
        """Apply moves of ``owner``'s claimed instances in one transaction; returns those
        applied (a move whose instance changed meanwhile, e.g. exited, is dropped).
        Instances in ``keep`` stay claimed (their send is next).

        The moves go as one statement per kind (kept, released); when any of them finds
        its instance changed, that transaction is rolled back and the moves are applied
        one at a time, so each is judged on its own."""
        try:
            return self._commit(moves, owner, now, keep, together=True)
        except _ChangedError:
            return self._commit(moves, owner, now, keep, together=False)

    def _commit(
        self,
        moves: Sequence[Move],
        owner: str,
        now: datetime,
        keep: Collection[str],
        together: bool,
    ) -> list[Move]:
        applied: list[Move] = []
        logged: list[dict[str, Any]] = []
        released: list[dict[str, Any]] = []
        params: dict[tuple[bool, bool], list[dict[str, Any]]] = {k: [] for k in _MOVES}
        with self.engine.begin() as conn:
            for m in moves:
                kind = (m.instance.instance_id in keep, m.state != LIVE)
                values = _move_values(m, owner, now)
                if together:
                    params[kind].append(values)
                elif conn.execute(_MOVES[kind], values).rowcount != 1:
                    continue
                applied.append(m)
            for kind, rows in params.items():
                if rows and conn.execute(_MOVES[kind], rows).rowcount != len(rows):
                    raise _ChangedError
            for m in applied:
                inst = m.instance
                logged += step_rows(inst, [(inst.seq + k, r) for k, r in enumerate(m.records)], now)
                if m.state != LIVE:
                    released.append(
                        {
                            "w_journey_id": inst.journey_id,
                            "w_customer_id": inst.customer_id,
                            "w_instance_id": inst.instance_id,
                        }
                    )
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
