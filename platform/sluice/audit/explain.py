"""One candidate's audit record in plain words."""

from __future__ import annotations

import json
from typing import Any

from sluice.errors import NotFoundError
from sluice.store.audit import AuditStore
from sluice.store.db import connect

OUTCOME_WORDS = {
    "holdout": "held out as the control group: no message, by design",
    "no_offer": "no offer qualified, so no message",
    "arm_paused": "in an arm a guardrail had paused (see the incident): no message",
    "rejected": "stopped by a gate",
    "review": "waiting for a person in the review queue",
    "reserved": "approved and reserved in the ledger for delivery",
    "deferred": "approved, deferred to a later time",
    "would_send": "would have been sent (dry run)",
    "would_defer": "would have been deferred (dry run)",
}


def explain(run_id: str, customer_id: str, database_url: str) -> tuple[str, dict[str, Any]]:
    """(text, record) for one candidate of a run."""
    record = AuditStore(connect(database_url)).record_of(run_id, customer_id)
    if record is None:
        raise NotFoundError(
            f"--customer: no audit record for {customer_id} in run {run_id}", field="customer"
        )
    r = record
    lines = [f"Customer {customer_id} in run {run_id} (campaign {r['campaign_id']})."]
    if r.get("model_name"):
        score = f"{r['score']:.4f}" if r.get("score") is not None else "no score"
        snapshot = (
            f"features as of {r['features_at']:%Y-%m-%d %H:%M:%S} UTC"
            if r.get("features_at") is not None
            else f"the feature snapshot {str(r.get('feature_hash') or '')[:16]}"
        )
        lines.append(
            f"Model {r['model_name']} version {r['model_version']} scored {score} on "
            f"{snapshot}; arm {r['arm']}; decision {r['decision_id']}."
        )
    if r.get("offer_id"):
        ev = r.get("expected_value")
        lines.append(
            f"Offer {r['offer_id']} by {r['channel']}"
            + (f", expected value {ev:.2f}." if ev is not None else ".")
        )
    if r.get("exclusions"):
        lines.append(f"Offers excluded: {r['exclusions']}.")
    draft = r.get("draft")
    if draft:
        how = r.get("copy_source") or draft.get("source")
        lines.append(
            f"Copy: {how} (template {r.get('template_version') or '-'}, prompt hash "
            f"{str(r.get('prompt_hash') or '-')[:16]}); slots {r.get('slots') or '{}'}."
        )
        for field in ("subject", "text"):
            if draft.get(field):
                lines.append(f"  {field}: {draft[field]}")
    for v in json.loads(r.get("verdicts") or "[]"):
        detail = f" ({v['detail']})" if v.get("detail") else ""
        lines.append(f"Gate {v['gate']}: {v['outcome']}, {v['reason']}{detail}.")
    words = OUTCOME_WORDS.get(r["outcome"], r["outcome"])
    by = f" ({r['gate']}: {r['reason']})" if r.get("gate") else ""
    lines.append(f"Outcome: {words}{by}.")
    delivery = r.get("delivery")
    if delivery:
        d = dict(delivery)
        lines.append(
            f"Delivery: {d['state']}"
            + (f", provider id {d['provider_message_id']}" if d.get("provider_message_id") else "")
            + (f", error {d['error']}" if d.get("error") else "")
            + "."
        )
    return "\n".join(lines), record
