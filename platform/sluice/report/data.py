"""The campaign report's figures, read from the database of one run."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from sluice.contracts.feedback import (
    DriftRow,
    FunnelStep,
    GainsPoint,
    Rejection,
    ReportData,
    ScoreHistogram,
)
from sluice.feedback.guardrails import check_run
from sluice.feedback.kpis import RunKpis, run_kpis
from sluice.report.funnel import FUNNEL_PARENTS, RUN_STAGES
from sluice.store.audit import AuditStore
from sluice.store.db import Engine
from sluice.store.drift import stored_drift
from sluice.store.incidents import Incidents

BINS = 20


def _histogram(k: RunKpis) -> ScoreHistogram:
    every = [s for pairs in k.scores.values() for s, _ in pairs]
    if not every:
        return ScoreHistogram(edges=[], counts={})
    hi = max(max(every), 1e-9)
    edges = np.linspace(0.0, hi, BINS + 1)
    counts = {
        arm: [int(c) for c in np.histogram([s for s, _ in pairs], bins=edges)[0]]
        for arm, pairs in sorted(k.scores.items())
    }
    return ScoreHistogram(edges=[round(float(e), 6) for e in edges], counts=counts)


def _gains(k: RunKpis) -> list[GainsPoint]:
    """Deciles of the messaged arms' recipients by score, with their conversions."""
    pairs = [p for arm in ("main", "canary") for p in k.scores.get(arm, [])]
    if not pairs:
        return []
    order = sorted(pairs, key=lambda p: -p[0])
    total = sum(c for _, c in order) or 0
    n = len(order)
    overall = total / n if n else 0.0
    points: list[GainsPoint] = []
    cum_r = cum_c = 0
    for d, chunk in enumerate(np.array_split(np.arange(n), 10), start=1):
        conv = sum(order[i][1] for i in chunk)
        cum_r += len(chunk)
        cum_c += conv
        rate = conv / len(chunk) if len(chunk) else 0.0
        points.append(
            GainsPoint(
                decile=d,
                recipients=len(chunk),
                conversions=int(conv),
                cum_recipients_share=cum_r / n,
                cum_conversions_share=cum_c / total if total else 0.0,
                lift=rate / overall if overall else None,
            )
        )
    return points


def _drift(engine: Engine, run_id: str) -> list[DriftRow]:
    """The run's drift rows; with a canary model, each variable is labelled by version."""
    stored = stored_drift(engine, run_id=run_id)
    several = len({version for _, version, _ in stored}) > 1
    return [
        row.model_copy(update={"variable": f"{row.variable} (v{version})"}) if several else row
        for _, version, row in stored
    ]


def report_data(engine: Engine, run_id: str) -> ReportData:
    k = run_kpis(engine, run_id)
    run = k.run
    funnel = AuditStore(engine).funnel(run_id)
    counts = {**funnel, **{s: run.funnel.get(s, 0) for s in RUN_STAGES}} if run.funnel else funnel
    steps = [
        FunnelStep(stage=stage, count=int(counts.get(stage, 0) or 0))
        for stage in FUNNEL_PARENTS
        if run.funnel or stage not in RUN_STAGES
    ]
    rejections = [
        Rejection(gate=gate, reason=reason, count=n)
        for gate, reasons in sorted(funnel.get("rejected", {}).items())
        for reason, n in sorted(reasons.items())
    ]
    canary = run.context.get("canary_model")
    return ReportData(
        run_id=run_id,
        campaign_id=run.campaign_id,
        campaign_name=str(run.spec.get("name", run.campaign_id)),
        status=run.status,
        started_at=run.started_at,
        finished_at=run.finished_at,
        generated_at=datetime.now(UTC),
        model_version=str(run.context.get("model", "")),
        canary_model_version=str(canary) if canary else None,
        scores=_histogram(k),
        gains=_gains(k),
        funnel=steps,
        rejections=rejections,
        arms=k.arms,
        guardrails=check_run(k),
        drift=_drift(engine, run_id),
        incidents=Incidents(engine).list(run.campaign_id),
    )


def write_report(engine: Engine, run_id: str, out: Path) -> Path:
    from sluice.report.html import render_html

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(report_data(engine, run_id)), encoding="utf-8")
    return out.resolve()
