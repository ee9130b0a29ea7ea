"""Journey sends, handed to the delivery pipeline in batches.

The instances due at one send step of one entry generation become one candidate batch
of the run ``j.<journey>.<step>.<generation>``: profile, offer and channel (named, from
the entry, or the decision rules on the model's score), arm (``holdout`` for the
journey's holdout: recorded, never sent) and copy, exactly the columns a campaign's
candidates carry, plus the instance's entry properties (``entry``, JSON), which fill
the copy's ``{entry.<property>}`` slots.
:class:`~sluice.coordinator.core.CoordinatorCore` gates, books, records and delivers
them in one call per batch; what became of each is read back from the run's audit
records and ledger rows. A batch submitted again (after a crash) is not gated twice:
the pipeline knows its records.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sluice.campaign.candidates import KEY_COLUMNS
from sluice.campaign.copy import attach_copy, drafts_for
from sluice.contracts.customer import Channel
from sluice.contracts.decisions import OfferCatalog
from sluice.contracts.journey import JourneySpec, OfferRef, Send
from sluice.coordinator.keys import decision_id
from sluice.decisioning.vectorized import decide_batch
from sluice.generation.cache import DraftCache
from sluice.generation.segments import lifecycle, tier
from sluice.hashing import unit_hash
from sluice.journeys.context import Profiles, Scored
from sluice.store.instances import Instance

PROFILE = ("email", "phone", "first_name", "country", "time_zone", "locale")
CONSENT = tuple(f"consent_{c.value}" for c in Channel)


@dataclass(frozen=True)
class SendContext:
    spec: JourneySpec
    catalog: OfferCatalog
    profiles: Profiles
    scored: Scored | None
    decision_day: Any
    drafts: DraftCache
    llm: Counter[str] = field(default_factory=Counter)
    """LLM calls made for this context's batches (generated, cached, fallback)."""


def _col(rows: pa.Table, name: str, known: np.ndarray, typ: pa.DataType) -> pa.Array:
    if name not in rows.column_names:
        return pa.nulls(len(known), typ)
    col = rows.column(name).combine_chunks().cast(typ)
    return pc.if_else(pa.array(~known), pa.scalar(None, typ), col)


def _offer_ids(send: Send, items: Sequence[Instance]) -> list[str | None]:
    ref = send.offer
    assert isinstance(ref, OfferRef)
    if ref.id is not None:
        return [ref.id] * len(items)
    assert ref.entry is not None
    return [str(i.entry[ref.entry]) if i.entry.get(ref.entry) is not None else None for i in items]


def candidates(ctx: SendContext, run_id: str, send: Send, items: Sequence[Instance]) -> pa.Table:
    """The candidate batch of the instances ``items``, all at the same send step."""
    ids = [i.customer_id for i in items]
    n = len(ids)
    rows, known = ctx.profiles.take(ids)
    cols = {p: _col(rows, p, known, pa.string()) for p in PROFILE}
    consent = {c: _col(rows, c, known, pa.bool_()) for c in CONSENT}
    scored = ctx.scored
    scores = np.array(
        [scored.scores.get(c, np.nan) if scored else np.nan for c in ids], dtype=np.float64
    )
    urls = {o.offer_id: str(o.url) for o in ctx.catalog.offers}
    if send.offer == "decision":
        only = None if send.channel == "best" else Channel(send.channel)
        reachable = {
            Channel.EMAIL: np.asarray(pc.is_valid(cols["email"])),
            Channel.SMS: np.asarray(pc.is_valid(cols["phone"])),
            Channel.PUSH: known.copy(),
        }
        reachable = {
            ch: ok & (ch in ctx.spec.channels) & (only is None or ch == only)
            for ch, ok in reachable.items()
        }
        granted = {
            ch: np.asarray(pc.fill_null(consent[f"consent_{ch.value}"], False)) for ch in Channel
        }
        decided = decide_batch(
            np.nan_to_num(scores, nan=0.0), cols["country"], reachable, granted,
            ctx.catalog, ctx.decision_day,
        )  # fmt: skip
        offer_ids = decided.offer_id.to_pylist()
        channels = decided.channel.to_pylist()
        ev: list[float | None] = list(decided.expected_value)
        exclusions = decided.exclusions
    else:
        offer_ids = [o if o and ctx.catalog.get(o) else None for o in _offer_ids(send, items)]
        channels = [str(send.channel) if o else None for o in offer_ids]
        ev = [None] * n
        exclusions = pa.array(
            [None if o else "offer_not_in_catalog" for o in offer_ids], pa.string()
        )
    variants = ctx.spec.copy_.variants
    variant = [
        variants[int(u * len(variants))] for u in unit_hash(ids, f"{ctx.spec.arm_salt}:variant")
    ]
    matrix = scored.matrix if scored else {}
    tenure = [_feature(matrix, c, scored, "tenure_days") for c in ids]
    recency = [_feature(matrix, c, scored, "recency_days") for c in ids]
    table = pa.table(
        {
            "customer_id": pa.array(ids, pa.string()),
            "decision_id": pa.array([decision_id(run_id, c) for c in ids], pa.string()),
            "arm": pa.array(["holdout" if i.holdout else "main" for i in items], pa.string()),
            "score": pa.array(scores, pa.float64(), mask=np.isnan(scores)),
            "model_name": pa.array([scored.model_name if scored else None] * n, pa.string()),
            "model_version": pa.array([scored.model_version if scored else None] * n, pa.string()),
            "feature_hash": pa.nulls(n, pa.string()),
            "features_at": pa.array(
                [scored.features_at.get(c) if scored else None for c in ids],
                pa.timestamp("us", tz="UTC"),
            ),
            "offer_id": pa.array(offer_ids, pa.string()),
            "channel": pa.array(channels, pa.string()),
            "expected_value": pa.array(ev, pa.float64()),
            "exclusions": exclusions,
            "offer_url": pa.array([urls.get(o) if o else None for o in offer_ids], pa.string()),
            "country": cols["country"],
            "time_zone": pc.fill_null(cols["time_zone"], "UTC"),
            "locale": pc.fill_null(cols["locale"], "en-US"),
            "email": cols["email"],
            "phone": cols["phone"],
            "first_name": cols["first_name"],
            **consent,
            "tier": pa.array(
                [tier(0.0 if np.isnan(s) else float(s)).value for s in scores], pa.string()
            ),
            "lifecycle": pa.array(
                [lifecycle(t, r).value for t, r in zip(tenure, recency, strict=True)], pa.string()
            ),
            "variant": pa.array(variant, pa.string()),
            "reason": pa.nulls(n, pa.string()),
            "record": pa.nulls(n, pa.string()),
            "entry": pa.array([json.dumps(i.entry, default=str) for i in items], pa.string()),
        }
    )
    return attach_copy(table, ctx.spec.copy_.mode, _drafts(ctx, table))


def _feature(
    matrix: dict[str, np.ndarray], c: str, scored: Scored | None, name: str
) -> float | None:
    if scored is None or c not in matrix or name not in scored.names:
        return None
    return float(matrix[c][scored.names.index(name)])


def _drafts(ctx: SendContext, table: pa.Table) -> dict[str, str]:
    """The draft of every copy key in the batch (fixed: the offers' approved copy;
    generate: the LLM, cached, with the approved copy as fallback)."""
    keyed = table.select(list(KEY_COLUMNS)).to_pylist()
    keys: Counter[tuple[str, ...]] = Counter(
        tuple(str(r[k]) for k in KEY_COLUMNS) for r in keyed if r["offer_id"] and r["channel"]
    )
    if not keys:
        return {}
    drafts, report = drafts_for(keys, ctx.spec.delivery_spec(), ctx.catalog, ctx.drafts)
    if report is not None:
        ctx.llm.update(generated=report.generated, cached=report.cached, fallback=report.fallback)
    return {k: d.model_dump_json() for k, d in drafts.items()}


def send_outcome_label(outcome: str, gate: str | None, state: str | None) -> str:
    """One word per send for the step log and the funnel."""
    if outcome == "rejected":
        return "capped" if gate == "frequency_cap" else f"rejected:{gate}"
    if outcome in ("reserved", "deferred") and state is not None:
        return "sent" if state == "sent" else state
    return outcome


__all__ = ["SendContext", "candidates", "send_outcome_label"]
