"""Committing journey moves on SQLite and PostgreSQL: a batch of moves goes as one
statement per kind, a move whose instance changed meanwhile is dropped on its own
while the rest of its batch applies, with no step log row written for it, and a crash
between a send and its record repeats no message and no step."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from tests.unit.test_journeys import KEYS, T0, World, cart

from sluice.journeys.engine import EngineConfig, JourneyEngine
from sluice.journeys.entries import EntryRequest
from sluice.settings import SluiceSettings
from sluice.store.instance_claims import Instances
from sluice.store.instances import LIVE, Move, StepRecord
from sluice.store.schema import journey_instances, journey_steps

LEASE = timedelta(minutes=5)


def _enter_and_claim(w: World, n: int, owner: str) -> tuple[Instances, list[Move]]:
    ids = [f"c{i:03d}" for i in range(n)]
    entered = w.engine.enter("cart", [EntryRequest(c, {"cart_id": f"k{c}"}, T0) for c in ids])
    assert all(not v.startswith("refused") for v in entered.values())
    later = T0 + timedelta(hours=2)  # the first wait (1h) is over
    store = Instances(w.db)
    claimed = store.claim_due(later, owner, later + LEASE, 100)
    assert len(claimed) == n
    moves = [
        Move(i, [StepRecord("grace", "wait", "waited", {})], step="remind", due_at=later)
        for i in claimed
    ]
    return store, moves


def _step_rows(w: World) -> dict[str, int]:
    with w.db.connect() as conn:
        rows = conn.execute(
            select(journey_steps.c.instance_id, func.count()).group_by(journey_steps.c.instance_id)
        ).all()
    return {str(i): int(n) for i, n in rows}


def test_a_batch_of_moves_applies_together(db_settings: SluiceSettings, tmp_path: Path) -> None:
    w = World(db_settings, tmp_path, 6)
    store, moves = _enter_and_claim(w, 6, "me")
    keep = {moves[0].instance.instance_id}
    applied = store.commit(moves, "me", T0 + timedelta(hours=2), keep)
    assert [m.instance.instance_id for m in applied] == [m.instance.instance_id for m in moves]
    assert set(_step_rows(w).values()) == {1}
    with w.db.connect() as conn:
        rows = conn.execute(
            select(journey_instances.c.instance_id, journey_instances.c.seq,
                   journey_instances.c.step, journey_instances.c.owner)
        ).all()  # fmt: skip
    for iid, seq, step, owner in rows:
        assert (seq, step) == (1, "remind")
        assert owner == ("me" if iid in keep else None)  # kept ones stay claimed
    w.engine.close()


def test_a_changed_instance_drops_only_its_own_move(
    db_settings: SluiceSettings, tmp_path: Path
) -> None:
    w = World(db_settings, tmp_path, 5)
    store, moves = _enter_and_claim(w, 5, "me")
    now = T0 + timedelta(hours=2)
    first, stale = moves[0], moves[1]
    # Two instances change under the batch: one moved already (its seq is ahead), one
    # was taken over by another owner.
    assert store.commit([first], "me", now, keep={first.instance.instance_id}) == [first]
    with w.db.begin() as conn:
        conn.execute(
            journey_instances.update()
            .where(journey_instances.c.instance_id == stale.instance.instance_id)
            .values(owner="someone-else")
        )
    applied = store.commit(moves, "me", now)
    assert [m.instance.instance_id for m in applied] == [m.instance.instance_id for m in moves[2:]]
    steps = _step_rows(w)
    assert steps[first.instance.instance_id] == 1  # not logged twice
    assert stale.instance.instance_id not in steps
    assert all(steps[m.instance.instance_id] == 1 for m in moves[2:])
    with w.db.connect() as conn:
        states = dict(
            conn.execute(select(journey_instances.c.instance_id, journey_instances.c.state)).all()
        )
    assert set(states.values()) == {LIVE}
    w.engine.close()


class DiesAfterSending(Instances):
    """The engine's instance store, whose process dies when it would record a send."""

    def commit(
        self, moves: Sequence[Move], owner: str, now: datetime, keep: Collection[str] = ()
    ) -> list[Move]:
        if any(r.kind == "send" for m in moves for r in m.records):
            raise SystemExit("killed after sending, before recording it")
        return super().commit(moves, owner, now, keep)


@pytest.mark.parametrize("first", ["replayed", "committed"])
def test_a_crash_between_send_and_record_neither_repeats_nor_skips_a_step(
    db_settings: SluiceSettings, tmp_path: Path, first: str
) -> None:
    """The walk to a send step is committed before the send when taking it again could
    decide otherwise (here: an attribute branch), and not when it only waited out a
    timer. Either way, a process that dies after sending and before recording the send
    leaves instances that the next engine, once the lease is over, sends no second
    message for and records each step of exactly once."""
    steps: list[dict[str, Any]] = [{"id": "grace", "wait": {"for": "1h"}}]
    if first == "committed":
        steps.append({"id": "gold", "branch": {"attribute": {"field": "tier", "value": "gold"}}})
    steps += [
        {"id": "remind", "send": {"channel": "email", "offer": {"id": "loyalty-double-points"}}},
        {"id": "later", "wait": {"for": "1d"}},
    ]
    w = World(db_settings, tmp_path, 4, steps=steps)
    w.events(*(cart(f"c{i:03d}", f"k{i}") for i in range(4)))
    w.at(timedelta(minutes=1))
    w.engine.instances = DiesAfterSending(w.db)
    with pytest.raises(SystemExit):
        w.at(timedelta(hours=1, minutes=1))
    assert all(w.ledger(f"c{i:03d}") == [("email", "sent")] for i in range(4))
    w.engine.close()

    def walked(i: int) -> list[tuple[str, str]]:
        if first == "replayed":
            return [("grace", "waited")]
        return [("grace", "waited"), ("gold", "then" if i % 2 else "else")]

    # What the dead engine committed: the walk to the send only where it had to.
    for i in range(4):
        assert w.steps(f"c{i:03d}") == ([] if first == "replayed" else walked(i))
    w.engine = JourneyEngine(EngineConfig(w.url, tmp_path, batch=50, owner="next"), KEYS, w.clock)
    w.at(timedelta(hours=1, minutes=7))  # past the five-minute lease
    for i in range(4):
        c = f"c{i:03d}"
        assert w.ledger(c) == [("email", "sent")]  # one message, never a second
        assert w.steps(c) == [*walked(i), ("remind", "sent")]
    lines = (tmp_path / "outbox").rglob("*.jsonl")
    assert sum(len(p.read_text().splitlines()) for p in lines) == 4
    w.engine.close()


def test_two_engines_on_one_database_send_each_message_once(
    db_settings: SluiceSettings, tmp_path: Path
) -> None:
    """Two orchestrators' engines tick the same journey at the same time: the claims'
    leases split the due instances between them, and every customer gets one email with
    each step logged once."""
    import threading

    n = 120
    w = World(db_settings, tmp_path, n)
    w.engine.enter("cart", [EntryRequest(f"c{i:03d}", {"cart_id": f"k{i}"}, T0) for i in range(n)])
    w.clock.set(T0 + timedelta(hours=1, minutes=1))
    engines = [
        JourneyEngine(EngineConfig(w.url, tmp_path, batch=7, owner=f"engine-{k}"), KEYS, w.clock)
        for k in range(2)
    ]
    sent = [0, 0]
    start = threading.Barrier(2)

    def run(k: int) -> None:
        start.wait()
        sent[k] = engines[k].tick().sends

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sum(sent) == n
    for i in range(n):
        c = f"c{i:03d}"
        assert w.ledger(c) == [("email", "sent")]
        assert w.steps(c) == [("grace", "waited"), ("remind", "sent")]
    lines = (tmp_path / "outbox").rglob("*.jsonl")
    assert sum(len(p.read_text().splitlines()) for p in lines) == n
    for e in engines:
        e.close()
    w.engine.close()
