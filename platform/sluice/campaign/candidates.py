"""Candidate messages: score, pick offer and channel, assign arms, key the copy.

Pass 1 of a campaign run, one fused Ray Data stage over the audience: each batch is
validated against the model's feature contract (bad rows are quarantined with reasons),
scored by the pinned model version, joined to customer profiles, assigned to an arm by
a salted hash of the customer id (holdout = no message), decided with the vectorised
next-best-offer rules, and given a prompt key (segment x offer x channel x locale x
variant). Nothing is sent here. The rows land in the run's staging area; the distinct
prompt keys travel in the sink's report to the copy step.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sluice.contracts.customer import Channel
from sluice.contracts.decisions import OfferCatalog
from sluice.contracts.feature_contract import FeatureContract
from sluice.contracts.localefmt import DEFAULT_LOCALE
from sluice.coordinator.keys import decision_id
from sluice.decisioning.vectorized import decide_batch
from sluice.generation.segments import lifecycle, tier
from sluice.hashing import unit_hash
from sluice.scoring.predictor import PredictorSpec

PROFILE_COLUMNS = (
    "customer_id",
    "email",
    "phone",
    "first_name",
    "country",
    "time_zone",
    "locale",
    "consent_email",
    "consent_sms",
    "consent_push",
)
COUNTRY_RE = r"^[A-Z]{2}$"
LOCALE_RE = r"^[a-z]{2}-[A-Z]{2}$"
KEY_COLUMNS = ("tier", "lifecycle", "country", "offer_id", "channel", "locale", "variant")
_PROFILES: dict[str, tuple[dict[str, int], pa.Table]] = {}


@dataclass(frozen=True)
class CandidateTask:
    run_id: str
    campaign_id: str
    holdout_pct: float
    contract: FeatureContract
    predictor: PredictorSpec
    model_name: str
    model_version: str
    catalog: OfferCatalog
    decision_date: date
    channels: tuple[str, ...]
    variants: tuple[str, ...]
    profiles: Any
    """The slim customers table (an ObjectRef when running on Ray)."""
    salt: str = ""
    """Salt of the arm and variant hashes (the campaign's)."""
    canary_pct: float = 0.0
    canary_predictor: PredictorSpec | None = None
    """Scores the canary arm (the challenger); None: the canary uses the main model."""
    canary_model_version: str | None = None


def assign_arms(ids: list[str], salt: str, holdout_pct: float, canary_pct: float) -> np.ndarray:
    """``holdout``, ``canary`` or ``main`` per id, from a salted hash: stable across reruns."""
    u = unit_hash(ids, f"{salt}:arm")
    holdout = u < holdout_pct / 100.0
    canary = ~holdout & (u < (holdout_pct + canary_pct) / 100.0)
    return np.where(holdout, "holdout", np.where(canary, "canary", "main"))


def _profiles(task: CandidateTask) -> tuple[dict[str, int], pa.Table]:
    cached = _PROFILES.get(task.run_id)
    if cached is None:
        import ray

        table = (
            ray.get(task.profiles) if isinstance(task.profiles, ray.ObjectRef) else task.profiles
        )
        index = {cid: i for i, cid in enumerate(table.column("customer_id").to_pylist())}
        _PROFILES.clear()
        cached = _PROFILES[task.run_id] = (index, table)
    return cached


def _only(values: pa.Array, pattern: str) -> pa.Array:
    """``values`` where they match ``pattern``, null elsewhere."""
    ok = pc.fill_null(pc.match_substring_regex(values, pattern), False)
    return pc.if_else(ok, values, pa.scalar(None, values.type))


def _feature(checked_matrix: np.ndarray, contract: FeatureContract, name: str) -> np.ndarray:
    return np.asarray(checked_matrix[:, contract.names.index(name)], dtype=np.float64)


def prepare_candidates(batch: pa.Table, task: CandidateTask) -> pa.Table:
    checked = task.contract.validate_batch(batch)
    n = checked.n_valid
    ids = checked.ids.to_pylist()
    scores = task.predictor.build().predict(checked.matrix) if n else np.empty(0)
    arm = assign_arms(ids, task.salt or task.campaign_id, task.holdout_pct, task.canary_pct)
    canary = arm == "canary"
    versions = np.full(n, task.model_version, dtype=object)
    if task.canary_predictor is not None and canary.any():
        scores = np.asarray(scores, dtype=np.float64).copy()
        scores[canary] = task.canary_predictor.build().predict(checked.matrix[canary])
        versions[canary] = task.canary_model_version
    index, profiles = _profiles(task)
    pos = np.array([index.get(c, -1) for c in ids], dtype=np.int64)
    prof = profiles.take(pa.array(np.where(pos >= 0, pos, 0), pa.int64()))
    missing = pa.array(pos < 0)

    def pcol(name: str) -> pa.Array:
        col = prof.column(name).combine_chunks()
        return pc.if_else(missing, pa.scalar(None, col.type), col)

    # Profile text that keys copy must be what it claims to be, or nothing: a country
    # that is not a code, a locale that is not one, never reaches a prompt key.
    country = _only(pcol("country"), COUNTRY_RE)
    if "country" in task.contract.names and n:
        cats = task.contract.spec("country").categories
        codes = checked.matrix[:, task.contract.names.index("country")]
        from_features = pa.array(
            [cats[int(c)] if not np.isnan(c) else None for c in codes], pa.string()
        )
        country = pc.coalesce(country, from_features)
    configured = set(task.channels)
    reachable = {
        Channel.EMAIL: np.asarray(pc.is_valid(pcol("email"))) & (Channel.EMAIL.value in configured),
        Channel.SMS: np.asarray(pc.is_valid(pcol("phone"))) & (Channel.SMS.value in configured),
        Channel.PUSH: ~np.asarray(missing) & (Channel.PUSH.value in configured),
    }
    consent = {
        ch: np.asarray(pc.fill_null(pc.equal(pcol(f"consent_{ch.value}"), True), False))
        for ch in Channel
    }
    decided = decide_batch(scores, country, reachable, consent, task.catalog, task.decision_date)
    variant = (
        np.array(task.variants, dtype=object)[
            (
                unit_hash(ids, f"{task.salt or task.campaign_id}:variant") * len(task.variants)
            ).astype(int)
        ]
        if n
        else np.array([], object)
    )
    tenure = _feature(checked.matrix, task.contract, "tenure_days") if n else np.empty(0)
    recency = _feature(checked.matrix, task.contract, "recency_days") if n else np.empty(0)
    urls = {o.offer_id: str(o.url) for o in task.catalog.offers}
    offer_ids = decided.offer_id.to_pylist()
    candidates = pa.table(
        {
            "customer_id": checked.ids,
            "decision_id": pa.array([decision_id(task.run_id, c) for c in ids], pa.string()),
            "arm": pa.array(arm, pa.string()),
            "score": pa.array(scores, pa.float64()),
            "model_name": pa.array([task.model_name] * n, pa.string()),
            "model_version": pa.array(versions, pa.string()),
            "feature_hash": pa.array(
                [hashlib.sha256(row.tobytes()).hexdigest()[:32] for row in checked.matrix],
                pa.string(),
            ),
            "offer_id": decided.offer_id,
            "channel": decided.channel,
            "expected_value": pa.array(decided.expected_value, pa.float64()),
            "exclusions": decided.exclusions,
            "offer_url": pa.array([urls.get(o) if o else None for o in offer_ids], pa.string()),
            "country": country,
            "time_zone": pc.fill_null(pcol("time_zone"), "UTC"),
            "locale": pc.fill_null(_only(pcol("locale"), LOCALE_RE), DEFAULT_LOCALE),
            "email": pcol("email"),
            "phone": pcol("phone"),
            "first_name": pcol("first_name"),
            "consent_email": pcol("consent_email"),
            "consent_sms": pcol("consent_sms"),
            "consent_push": pcol("consent_push"),
            "tier": pa.array([tier(s).value for s in scores], pa.string()),
            "lifecycle": pa.array(
                [lifecycle(t, r).value for t, r in zip(tenure, recency, strict=True)], pa.string()
            ),
            "variant": pa.array(variant, pa.string()),
            "reason": pa.nulls(n, pa.string()),
            "record": pa.nulls(n, pa.string()),
        }
    )
    if checked.n_quarantined == 0:
        return candidates
    q = checked.quarantine
    bad = {
        name: pa.nulls(q.num_rows, candidates.schema.field(name).type)
        for name in candidates.column_names
    }
    bad.update(
        customer_id=q.column("customer_id").combine_chunks(),
        reason=q.column("reason").combine_chunks(),
        record=q.column("record").combine_chunks(),
    )
    return pa.concat_tables([candidates, pa.table(bad, schema=candidates.schema)])


def slim_profiles(path: Any) -> pa.Table:
    """The profile columns candidates need (addresses, consent, time zone, locale)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=list(PROFILE_COLUMNS))
    return table.combine_chunks()
