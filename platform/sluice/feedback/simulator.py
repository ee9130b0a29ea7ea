"""A feedback simulator: outcome events for a campaign run, from the synthetic customers'
latent propensities, for tests and the demo.

Without a message a customer converts with their true propensity over the attribution
window. A message changes that by how well the model that chose it judged the person:
``mismatch`` is the distance between the customer's score rank (among their arm, under
the arm's model) and their true propensity rank. A well-targeted message lifts
conversion; a mistargeted one annoys: fewer conversions, more unsubscribes and
complaints. A challenger whose scores run against the truth (one trained on inverted
labels, say) therefore shows up in the KPIs the way a harmful model does in life.

Events carry the run and campaign, and deterministic ids: simulating a run twice gives
the same events, which deduplicate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from sluice.errors import NotFoundError
from sluice.hashing import unit_hash
from sluice.store.db import Engine
from sluice.store.recipients import run_recipients, sent_channels
from sluice.store.runs import Runs


@dataclass(frozen=True)
class FeedbackModel:
    uplift: float = 0.8
    """Relative conversion uplift of a perfectly targeted message."""
    fatigue: float = 2.0
    """Relative conversion loss per unit of mismatch."""
    complaint_base: float = 0.002
    complaint_mistarget: float = 0.25
    unsubscribe_base: float = 0.004
    unsubscribe_mistarget: float = 0.1
    annoyance_power: float = 3.0
    """Complaints and unsubscribes grow with ``mismatch ** annoyance_power``: a slightly
    off message rarely offends, a badly mistargeted one often does."""
    open_rate: float = 0.3
    click_rate: float = 0.25
    """Share of opens that click."""
    mean_order: float = 60.0


def _ranks(values: np.ndarray) -> np.ndarray:
    if len(values) <= 1:
        return np.full(len(values), 0.5)
    return np.argsort(np.argsort(values)) / (len(values) - 1)


def simulate_run(
    engine: Engine,
    run_id: str,
    truth: Path,
    model: FeedbackModel | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Outcome events (as the back office's ``POST /v1/events`` takes them) for every
    customer of the run."""
    m = model or FeedbackModel()
    run = Runs(engine).get(run_id)
    if run is None:
        raise NotFoundError(f"no campaign run {run_id!r}", field="run_id")
    days = int(run.spec.get("attribution_days", 7))
    rows = run_recipients(engine, run_id)
    sent = sent_channels(engine, run_id)
    if not rows:
        return []
    t = pq.read_table(truth, columns=["customer_id", "latent_propensity", "propensity_90d"])
    index = {c: i for i, c in enumerate(t.column("customer_id").to_pylist())}
    latent_all = t.column("latent_propensity").to_numpy()
    p90_all = t.column("propensity_90d").to_numpy()
    ids = [r.customer_id for r in rows]
    arms = np.array([r.arm for r in rows])
    scores = np.array([np.nan if r.score is None else r.score for r in rows])
    pos = np.array([index.get(c, -1) for c in ids])
    known = pos >= 0
    latent = np.where(known, latent_all[np.maximum(pos, 0)], np.nan)
    p_base = 1 - (1 - np.where(known, p90_all[np.maximum(pos, 0)], 0.0)) ** (days / 90)
    true_rank = np.full(len(ids), 0.5)
    true_rank[known] = _ranks(latent[known])
    score_rank = np.full(len(ids), 0.5)
    for arm in set(arms.tolist()):
        sel = (arms == arm) & ~np.isnan(scores)
        score_rank[sel] = _ranks(scores[sel])
    mismatch = np.abs(score_rank - true_rank)
    messaged = np.array([c in sent for c in ids])
    factor = np.where(messaged, np.clip(1 + m.uplift - m.fatigue * mismatch, 0.0, None), 1.0)
    p_convert = np.clip(p_base * factor, 0, 1)
    u = {
        k: unit_hash(ids, f"{run_id}:sim:{k}")
        for k in ("conv", "rev", "compl", "unsub", "open", "click", "when")
    }
    now = now or datetime.now(UTC)
    span = max(min((now - run.started_at).total_seconds(), days * 86_400.0), 1.0)
    events: list[dict[str, Any]] = []

    def add(i: int, kind: str, **extra: Any) -> None:
        when = run.started_at + timedelta(seconds=float(u["when"][i]) * span)
        events.append(
            {
                "event_id": f"sim:{run_id}:{ids[i]}:{kind}",
                "type": kind,
                "customer_id": ids[i],
                "occurred_at": when.isoformat(),
                "run_id": run_id,
                "campaign_id": run.campaign_id,
                **extra,
            }
        )

    for i in range(len(ids)):
        if not known[i]:
            continue
        channel = sent.get(ids[i])
        if channel is not None:
            add(i, "delivered", channel=channel)
            if u["open"][i] < m.open_rate:
                add(i, "open", channel=channel)
                if u["click"][i] < m.click_rate:
                    add(i, "click", channel=channel)
            annoyance = mismatch[i] ** m.annoyance_power
            if u["compl"][i] < m.complaint_base + m.complaint_mistarget * annoyance:
                add(i, "complaint", channel=channel)
            elif u["unsub"][i] < m.unsubscribe_base + m.unsubscribe_mistarget * annoyance:
                add(i, "unsubscribe", channel=channel)
        if u["conv"][i] < p_convert[i]:
            revenue = round(float(m.mean_order * np.exp(0.5 * (u["rev"][i] - 0.5))), 2)
            add(i, "conversion", revenue=revenue)
    return events
