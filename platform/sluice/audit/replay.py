"""Replay a run's content gates on its recorded inputs and report what differs.

The audit trail keeps, for every gated message, the draft (by content hash), the slot
values, the offer, channel, score and expected value, and every verdict. Replaying
rebuilds each message from those and runs the gates whose verdicts depend only on them
(injection, PII, claims, brand safety, channel format, confidence), with the run's own
gate settings or with other settings (``spec``) to see what a change would do. Gates that
depend on state at send time (consent, suppressions, quiet hours, the frequency cap) are
recorded, not replayed: their inputs were the world at that moment.

A recorded verdict is compared where the message reached that gate; a gate the run did
not have counts as a pass for messages the run let through. ``differing`` counts the
(message, gate) pairs whose outcome or reason is not what was recorded.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pyarrow as pa

from sluice.contracts.campaign import CampaignSpec
from sluice.contracts.drafts import MessageDraft
from sluice.decisioning.catalog import load_catalog
from sluice.errors import NotFoundError
from sluice.gates.base import OUTCOMES, GateContext, MessageBatch
from sluice.gates.build import build_chain
from sluice.generation.slots import personalise
from sluice.store.db import Engine, connect
from sluice.store.runs import Runs
from sluice.store.trail import draft_texts, gated_records

REPLAYABLE = ("injection", "pii", "claims", "brand_safety", "channel_format", "confidence")
LET_THROUGH = {"reserved", "deferred", "would_send", "would_defer"}
COPY = ("subject", "preheader", "body", "cta", "text")


@dataclass
class ReplayReport:
    run_id: str
    checked: int = 0
    differing: int = 0
    by_gate: dict[str, int] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "checked": self.checked,
            "differing": self.differing,
            "by_gate": self.by_gate,
        }


def _records(engine: Engine, run_id: str) -> tuple[list[dict[str, Any]], dict[str, MessageDraft]]:
    rows = gated_records(engine, run_id)
    texts = draft_texts(engine, [r["draft_id"] for r in rows if r["draft_id"]])
    return rows, {k: MessageDraft.model_validate_json(v) for k, v in texts.items()}


def replay_run(run_id: str, database_url: str, spec: CampaignSpec | None = None) -> ReplayReport:
    engine = connect(database_url)
    run = Runs(engine).get(run_id)
    if run is None:
        raise NotFoundError(f"--run: no run {run_id}", field="run")
    spec = spec or CampaignSpec.model_validate(run.spec)
    rows, found = _records(engine, run_id)
    report = ReplayReport(run_id)
    rows = [r for r in rows if r["draft_id"] in found]
    if not rows:
        return report
    columns: dict[str, list[Any]] = {
        k: []
        for k in (
            "customer_id",
            "channel",
            "offer_id",
            *COPY,
            "first_name",
            "score",
            "expected_value",
        )
    }
    for r in rows:
        slots = json.loads(r["slots"] or "{}")
        filled = personalise(found[r["draft_id"]], slots)
        columns["customer_id"].append(r["customer_id"])
        columns["channel"].append(r["channel"])
        columns["offer_id"].append(r["offer_id"])
        for f in COPY:
            columns[f].append(getattr(filled, f))
        columns["first_name"].append(slots.get("first_name"))
        columns["score"].append(r["score"])
        columns["expected_value"].append(r["expected_value"])
    batch = MessageBatch(pa.table(columns))
    # The catalog as the run saw it: relative validity resolved for its decision date
    # (a journey run recorded before it kept one: the day it started).
    recorded_day = run.context.get("decision_date")
    decision_date = date.fromisoformat(recorded_day) if recorded_day else run.started_at.date()
    chain = build_chain(spec, load_catalog(spec.offers, decision_date))
    ctx = GateContext(run_id, spec.campaign_id, spec.brand, run.started_at, True, {})
    recorded = [json.loads(r["verdicts"]) for r in rows]
    by_gate: Counter[str] = Counter()
    for gate in chain.gates:
        if gate.name not in REPLAYABLE:
            continue
        v = gate.evaluate(batch, ctx)
        for i, r in enumerate(rows):
            mine = next((x for x in recorded[i] if x["gate"] == gate.name), None)
            if mine is None:
                if r["outcome"] not in LET_THROUGH:
                    continue  # stopped before this gate, or it was not in the chain
                mine = {"outcome": "pass", "reason": "ok"}
            report.checked += 1
            now = (OUTCOMES[int(v.outcome[i])].value, str(v.reason[i]))
            if now != (mine["outcome"], mine["reason"]):
                by_gate[gate.name] += 1
                if len(report.examples) < 20:
                    report.examples.append(
                        {
                            "customer_id": r["customer_id"],
                            "gate": gate.name,
                            "recorded": f"{mine['outcome']}:{mine['reason']}",
                            "replayed": f"{now[0]}:{now[1]}",
                            "detail": str(v.detail[i]),
                        }
                    )
    report.by_gate = dict(by_gate)
    report.differing = sum(by_gate.values())
    return report
