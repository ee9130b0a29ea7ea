"""The feedback loop: outcome events in, KPIs per arm, guardrails that act, a simulator."""

from sluice.feedback.guardrails import GuardrailCheck, evaluate_guardrails
from sluice.feedback.ingest import ingest
from sluice.feedback.kpis import RunKpis, run_kpis

__all__ = ["GuardrailCheck", "RunKpis", "evaluate_guardrails", "ingest", "run_kpis"]
