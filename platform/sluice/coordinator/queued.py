"""Messages a gate handed to a person: the review item a run books for each.

A review item carries the message's candidate row (one-row Arrow IPC) and expires
``review_hours`` after gating, never after the last day of its offer.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import pyarrow as pa

from sluice.contracts.campaign import CampaignSpec
from sluice.contracts.decisions import OfferCatalog
from sluice.contracts.verdicts import GateOutcome
from sluice.store.reviews import encode_row


def review_item(
    run_id: str,
    spec: CampaignSpec,
    catalog: OfferCatalog,
    key: str,
    row: pa.Table,
    r: dict[str, Any],
    verdicts: list[dict[str, Any]],
    now: datetime,
) -> dict[str, Any]:
    """The review item of candidate ``r`` (``row``: its one-row table, ``key``: its
    idempotency key) that the last verdict asking for review sent to a person."""
    verdict = next(v for v in reversed(verdicts) if v["outcome"] == GateOutcome.REVIEW.value)
    return {
        "review_id": key,
        "run_id": run_id,
        "campaign_id": spec.campaign_id,
        "customer_id": r["customer_id"],
        "channel": r["channel"],
        "offer_id": r.get("offer_id"),
        "gate": verdict["gate"],
        "reason": verdict["reason"],
        "detail": verdict["detail"],
        "message": encode_row(row),
        "expires_at": review_expiry(spec, catalog, r.get("offer_id"), now),
    }


def review_expiry(
    spec: CampaignSpec, catalog: OfferCatalog, offer_id: str | None, now: datetime
) -> datetime:
    """End of the review window: ``review_hours`` after gating, and never after the
    last day of the offer."""
    until = now + timedelta(hours=spec.review_hours)
    offer = catalog.get(offer_id) if offer_id else None
    if offer is not None:
        last = datetime.combine(offer.valid_until + timedelta(days=1), time(), UTC)
        until = min(until, last)
    return until
