"""The journey chaos test: the orchestrator SIGKILLed 20 times, on SQLite and PostgreSQL.

2,000 customers abandon a cart; a fifth buy it at once, a third open a message. The
cart-abandonment journey (wait 1 s, email, wait 1 s, opened? done : text) runs in a real
``sluice orchestrator run`` process that is killed at random moments and restarted,
about half of the restarts with the clock past every lease the killed process held;
then one last orchestrator runs until no instance is live. An oracle that knows only the
inputs (:mod:`journey_chaos_oracle`) says who must get which message; the outbox files
say what was delivered, and the ledger, the step log and the instances what Sluice
recorded. Nothing may be lost, sent twice, booked twice or stepped twice, and every
instance must have ended the way its customer's events say.

The events are stored in two calls, customer events first, outcome events (the opens)
second: :func:`sluice.feedback.ingest.ingest` fails on one batch that mixes both kinds
(``EventStore.add`` inserts a chunk as one multi-row VALUES whose rows have different
columns: ``properties`` for customer events, ``run_id``, ``campaign_id``, ``channel`` and
``revenue`` for outcome events), which this test is not about.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from journey_chaos_oracle import ChaosReport, World
from journey_chaos_support import run_chaos

from sluice.store.db import dispose

CUSTOMERS = 2_000
KILLS = 20


def summary(world: World, report: ChaosReport) -> str:
    lines = [
        f"{report.database}: {report.kills} kills ({report.jumps} with the clock past the "
        f"leases), {report.seconds} s ({report.settle_seconds} s to settle)",
        f"expected {report.expected} messages, delivered {report.delivered}; "
        f"instances {report.states}, exits {report.exits}; "
        f"the last orchestrator exited {report.last_exit}",
        "kills: " + ", ".join(s.phase for s in report.snapshots),
    ]
    for name, found in report.failures().items():
        lines.append(f"{name}: {len(found)}, e.g. {found[:5]}")
    return "\n".join(lines)


@pytest.mark.slow
def test_twenty_orchestrator_kills_lose_nothing_and_repeat_nothing(
    database_url: str, tmp_path: Path
) -> None:
    try:
        world, report = run_chaos(
            tmp_path / "chaos", database_url, CUSTOMERS, KILLS, seed=23, deadline_s=150
        )
    finally:
        dispose(database_url)
    why = summary(world, report)
    # The oracle is not trivial: every path through the journey is taken by many.
    holdout = world.holdout()
    assert 0.06 < len(holdout) / CUSTOMERS < 0.14, why
    assert 300 < len(world.buyers) < 500 and 500 < len(world.openers) < 700, why
    channels = Counter(ch for _, ch in world.expected())
    assert channels["email"] > 1_200 and channels["sms"] > 800, why
    # The chaos happened: every kill, some restarts finding the killed one's claims
    # held and some past them, and kills while messages were being sent.
    assert report.kills == KILLS and 0 < report.jumps < KILLS, why
    assert any(s.live and (s.emails or s.texts) for s in report.snapshots), why
    # Nothing lost, nothing twice, every instance ended as its events say.
    assert report.last_exit == 0, why
    assert not report.failures(), why
    assert report.delivered == report.expected, why
    assert report.states == {"exited": CUSTOMERS}, why
    assert report.exits == {
        "event:purchase": len(world.buyers),
        "done": CUSTOMERS - len(world.buyers),
    }, why
