"""KPIs of a campaign run per arm and model version, from the audit trail, the ledger and
outcome events.

Intention to treat: every customer assigned to an arm counts as its recipient, messaged
or not (the holdout gets nothing; canary and main customers the model chose not to
message still belong to their arm), so lift versus the holdout compares like with like.
Conversions and revenue count per recipient; unsubscribes and complaints per message
sent. Events count when they occur in the run's attribution window (``attribution_days``
after the run started), matched by customer id.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sluice.contracts.feedback import ArmKpi, EventType, Interval
from sluice.errors import NotFoundError
from sluice.feedback.stats import Estimate, difference, mean, normal_interval, rate, wilson
from sluice.store.db import Engine
from sluice.store.events import EventStore
from sluice.store.recipients import run_recipients, sent_channels
from sluice.store.runs import RunRecord, Runs

ARMS = ("holdout", "canary", "main")
METRICS = ("conversion_rate", "revenue_per_recipient", "unsubscribe_rate", "complaint_rate")


@dataclass
class _Tally:
    recipients: set[str] = field(default_factory=set)
    sent: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class RunKpis:
    run: RunRecord
    arms: list[ArmKpi]
    estimates: dict[str, dict[str, Estimate]]
    """Per arm (all model versions together): each metric's estimate, for guardrails."""
    sent: dict[str, int]
    scores: dict[str, list[tuple[float, bool]]]
    """Per arm: (score, converted) of every scored recipient (for gains charts)."""


def _interval(e: Estimate, low: float, high: float) -> Interval:
    return Interval(value=e.value, low=low, high=high)


def run_kpis(engine: Engine, run_id: str) -> RunKpis:
    run = Runs(engine).get(run_id)
    if run is None:
        raise NotFoundError(f"no campaign run {run_id!r}", field="run_id")
    days = int(run.spec.get("attribution_days", 7))
    groups: dict[tuple[str, str | None], _Tally] = defaultdict(_Tally)
    arm_of: dict[str, tuple[str, str | None]] = {}
    score_of: dict[str, float] = {}
    for r in run_recipients(engine, run_id):
        key = (r.arm, r.model_version)
        groups[key].recipients.add(r.customer_id)
        arm_of[r.customer_id] = key
        if r.score is not None:
            score_of[r.customer_id] = r.score
    for cid in sent_channels(engine, run_id):
        if cid in arm_of:
            groups[arm_of[cid]].sent.add(cid)
    events = EventStore(engine).for_customers(
        set(arm_of), run.started_at, run.started_at + timedelta(days=days)
    )
    revenue: dict[str, float] = defaultdict(float)
    converted: set[str] = set()
    unsubscribed: set[str] = set()
    complained: set[str] = set()
    for e in events:
        if e.type == EventType.CONVERSION:
            converted.add(e.customer_id)
            revenue[e.customer_id] += e.revenue or 0.0
        elif e.type == EventType.UNSUBSCRIBE:
            unsubscribed.add(e.customer_id)
        elif e.type == EventType.COMPLAINT:
            complained.add(e.customer_id)

    def estimates(t: _Tally) -> dict[str, Estimate]:
        n, sent = len(t.recipients), len(t.sent)
        rev = [revenue[c] for c in t.recipients if c in revenue]
        return {
            "conversion_rate": rate(len(t.recipients & converted), n),
            "revenue_per_recipient": mean(sum(rev), sum(r * r for r in rev), n),
            "unsubscribe_rate": rate(len(t.sent & unsubscribed), sent),
            "complaint_rate": rate(len(t.sent & complained), sent),
        }

    per_arm: dict[str, _Tally] = defaultdict(_Tally)
    for (arm, _), t in groups.items():
        per_arm[arm].recipients |= t.recipients
        per_arm[arm].sent |= t.sent
    arm_estimates = {arm: estimates(t) for arm, t in per_arm.items()}
    holdout = arm_estimates.get("holdout")
    kpis: list[ArmKpi] = []
    for (arm, version), t in sorted(
        groups.items(), key=lambda kv: (ARMS.index(kv[0][0]), str(kv[0][1]))
    ):
        est = estimates(t)
        conv, rpr = est["conversion_rate"], est["revenue_per_recipient"]
        lift = None
        if holdout is not None and arm != "holdout":
            d, lo, hi = difference(conv, holdout["conversion_rate"])
            lift = Interval(value=d, low=lo, high=hi)
        unsub, compl = est["unsubscribe_rate"], est["complaint_rate"]
        kpis.append(
            ArmKpi(
                arm=arm,  # type: ignore[arg-type]
                model_version=version,
                recipients=len(t.recipients),
                sent=len(t.sent),
                conversions=len(t.recipients & converted),
                revenue=round(sum(revenue[c] for c in t.recipients if c in revenue), 2),
                conversion_rate=_interval(conv, *wilson(len(t.recipients & converted), conv.n)),
                revenue_per_recipient=_interval(rpr, *normal_interval(rpr)),
                lift_vs_holdout=lift,
                unsubscribe_rate=_interval(unsub, *wilson(len(t.sent & unsubscribed), unsub.n)),
                complaint_rate=_interval(compl, *wilson(len(t.sent & complained), compl.n)),
                unsubscribes=len(t.sent & unsubscribed),
                complaints=len(t.sent & complained),
            )
        )
    scores: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    for cid, (arm, _) in arm_of.items():
        if cid in score_of:
            scores[arm].append((score_of[cid], cid in converted))
    return RunKpis(
        run=run,
        arms=kpis,
        estimates=arm_estimates,
        sent={arm: len(t.sent) for arm, t in per_arm.items()},
        scores=dict(scores),
    )


def kpis_json(k: RunKpis) -> dict[str, Any]:
    return {"run_id": k.run.run_id, "arms": [a.model_dump(mode="json") for a in k.arms]}
