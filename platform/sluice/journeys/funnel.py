"""A journey's funnel: entries, where instances stand, what each step did, and lift.

Built from the instances and the step log (or, in a backtest, from a throwaway
database of the same shape): per step, how often each outcome happened, for treated
instances and the holdout apart; exits by reason; and conversions of treated against
holdout with the difference's 95% interval.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sluice.contracts.journey import JourneySpec
from sluice.feedback.stats import difference, rate
from sluice.store.db import Engine
from sluice.store.journey_reads import JourneyReads, conversion_counts


def funnel(engine: Engine, spec: JourneySpec, now: datetime) -> dict[str, Any]:
    insts = JourneyReads(engine)
    counts = insts.counts(spec.journey_id)
    steps: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for step_id, outcome, holdout, n in insts.step_outcomes(spec.journey_id):
        arm = "holdout" if holdout else "treated"
        steps[step_id][outcome][arm] = steps[step_id][outcome].get(arm, 0) + n
    entries = sum(counts["state"].values())
    out: dict[str, Any] = {
        "journey_id": spec.journey_id,
        "entries": entries,
        "live": counts["state"].get("live", 0),
        "completed": counts["state"].get("completed", 0),
        "exited": counts["exited"],
        "at_step": counts["at_step"],
        "steps": [
            {"step": s.id, "kind": s.kind, "outcomes": {o: dict(a) for o, a in steps[s.id].items()}}
            for s in spec.steps
        ],
    }
    out["sent"] = sum(
        a.get("treated", 0)
        for s in spec.steps
        if s.send is not None
        for o, a in steps[s.id].items()
        if o == "sent"
    )
    if spec.conversion is not None:
        arms = conversion_counts(engine, spec.journey_id, spec.conversion.type, now)
        n_t, k_t = arms.get(False, (0, 0))
        n_h, k_h = arms.get(True, (0, 0))
        conv: dict[str, Any] = {
            "event": spec.conversion.type,
            "treated": {"instances": n_t, "converted": k_t},
            "holdout": {"instances": n_h, "converted": k_h},
        }
        if n_t and n_h:
            lift, low, high = difference(rate(k_t, n_t), rate(k_h, n_h))
            conv["lift"] = {"value": lift, "low": low, "high": high}
        out["conversions"] = conv
    return out
