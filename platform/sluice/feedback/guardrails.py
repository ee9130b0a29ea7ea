"""Guardrails: the canary arm's KPIs against main or the holdout, acted on automatically.

When a guardrail of a run fires (enough canary sends, and the one-sided test reaches the
configured significance), and the campaign's canary arm is not paused yet: the arm is
paused and an incident opened with the evidence (one transaction), the canary model's
alias is rolled back if it still points at the version the run used, and both actions
are written to the operations log. From then on the coordinator records canary
candidates as ``arm_paused`` and no canary message is claimed for sending. A person
resolves the incident (``sluice incidents resolve``), and may resume the arm.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sluice.contracts.campaign import CampaignSpec, Guardrail
from sluice.contracts.feedback import GuardrailResult, Incident
from sluice.feedback.kpis import RunKpis, run_kpis
from sluice.feedback.stats import p_above_ratio, p_below_lift
from sluice.registry.uri import ModelURI
from sluice.store.db import Engine
from sluice.store.incidents import ArmStates, Incidents
from sluice.store.operations import OperationsLog

if TYPE_CHECKING:
    from sluice.registry.registry import Registry

log = logging.getLogger("sluice.guardrails")


@dataclass(frozen=True)
class GuardrailCheck:
    run_id: str
    results: list[GuardrailResult]
    incident: Incident | None = None
    """The incident this evaluation opened (None when nothing fired or already paused)."""
    actions: list[str] = field(default_factory=list)


def check(g: Guardrail, kpis: RunKpis) -> GuardrailResult:
    canary, other = kpis.estimates.get("canary"), kpis.estimates.get(g.versus)
    if canary is None or other is None:
        return GuardrailResult(
            name=g.name,
            metric=g.metric,
            fired=False,
            observed=None,
            p_value=None,
            detail=f"no {'canary' if canary is None else g.versus} recipients yet",
        )
    a, b = canary[g.metric], other[g.metric]
    if g.max_ratio is not None:
        p = p_above_ratio(a, b, g.max_ratio)
        observed = a.value / b.value if b.value else (math.inf if a.value else None)
        test = f"canary {g.metric} {a.value:.4f} vs {g.max_ratio:g} x {g.versus} {b.value:.4f}"
    else:
        assert g.min_lift is not None
        p = p_below_lift(a, b, g.min_lift)
        observed = a.value - b.value
        test = f"canary - {g.versus} {g.metric}: {observed:+.4f} vs minimum {g.min_lift:+g}"
    sent = kpis.sent.get("canary", 0)
    enough = sent >= g.min_sent
    fired = enough and p < g.p_value
    note = "" if enough else f"; waiting for {g.min_sent} canary sends ({sent} so far)"
    return GuardrailResult(
        name=g.name,
        metric=g.metric,
        fired=fired,
        observed=None if observed is None or math.isinf(observed) else round(observed, 6),
        p_value=round(p, 6),
        detail=f"{test}, p={p:.4g} (fires below {g.p_value:g}){note}",
    )


def check_run(kpis: RunKpis) -> list[GuardrailResult]:
    """Every guardrail of the run's spec against KPIs already computed (no action)."""
    spec = CampaignSpec.model_validate(kpis.run.spec)
    if spec.canary is None:
        return []
    return [check(g, kpis) for g in spec.canary.guardrails]


def evaluate_guardrails(
    engine: Engine, registry: Registry, run_id: str, act: bool = True
) -> GuardrailCheck:
    """Evaluate the run's guardrails; with ``act``, pause, roll back and open an incident."""
    kpis = run_kpis(engine, run_id)
    spec = CampaignSpec.model_validate(kpis.run.spec)
    results = check_run(kpis)
    if not results:
        return GuardrailCheck(run_id, [])
    fired = [r for r in results if r.fired]
    if not fired or not act or kpis.run.dry_run:
        return GuardrailCheck(run_id, results)
    if "canary" in ArmStates(engine).paused(spec.campaign_id):
        return GuardrailCheck(run_id, results)
    evidence = {
        "fired": [r.model_dump() for r in fired],
        "arms": [a.model_dump(mode="json") for a in kpis.arms],
        "canary_model": kpis.run.context.get("canary_model"),
    }
    incidents = Incidents(engine)
    incident = incidents.open(
        spec.campaign_id, run_id, "canary", fired[0].name, evidence, ["paused the canary arm"]
    )
    ops = OperationsLog(engine)
    actor = f"guardrail:{fired[0].name}"
    ops.record(
        "pause", f"campaign:{spec.campaign_id}/canary", actor, {"incident": incident.incident_id}
    )
    actions = ["paused the canary arm"]
    moved = _roll_back_alias(registry, spec, kpis, actor, incident.incident_id)
    if moved:
        incidents.add_action(incident.incident_id, moved)
        actions.append(moved)
    log.warning("guardrail %s fired on %s: %s", fired[0].name, run_id, "; ".join(actions))
    return GuardrailCheck(run_id, results, incidents.get(incident.incident_id), actions)


def _roll_back_alias(
    registry: Registry, spec: CampaignSpec, kpis: RunKpis, actor: str, incident_id: str
) -> str | None:
    from sluice.registry.rollback import rollback

    assert spec.canary is not None
    ref = ModelURI.parse(spec.canary.model)
    used = str(kpis.run.context.get("canary_model", "")).rpartition("/")[2]
    if ref.alias is None or not used:
        return None
    done = rollback(
        actor, alias=ref.alias, name=ref.name, reason=incident_id, registry=registry, only_if=used
    )
    if done is None:
        return None
    return f"moved {ref.name}@{ref.alias} from version {done.from_version} to {done.to_version}"
