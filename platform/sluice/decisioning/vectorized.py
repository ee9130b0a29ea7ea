"""The next-best-offer rules over whole Arrow batches, for campaigns.

Same rules, order and tie-breaks as :func:`sluice.decisioning.rules.decide` (a property
test holds the two to each other), computed per offer across all rows with NumPy:
validity, country, minimum score, a reachable channel, consent on it; then the highest
``score x value``, ties to the higher priority and then the lower offer id. Campaign
rows hold no offers yet, so the held-offer rules do not apply here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sluice.arrowutil import join_present
from sluice.contracts.customer import Channel
from sluice.contracts.decisions import ExclusionRule, OfferCatalog


@dataclass(frozen=True)
class BatchDecision:
    offer_id: pa.Array
    """Chosen offer per row (null when none is eligible)."""
    channel: pa.Array
    """Channel of the chosen offer (null when none)."""
    expected_value: np.ndarray
    """score x value of the chosen offer (NaN when none)."""
    exclusions: pa.Array
    """``offer:rule`` for every excluded offer, ``;``-separated (empty string when none)."""


def decide_batch(
    scores: np.ndarray,
    country: pa.Array,
    reachable: dict[Channel, np.ndarray],
    consent: dict[Channel, np.ndarray],
    catalog: OfferCatalog,
    day: date,
) -> BatchDecision:
    """Decide every row at once. ``consent[c]`` is True only where consent is granted."""
    n = len(scores)
    none = np.zeros(n, dtype=bool)
    best_ev = np.full(n, -np.inf)
    best_offer = np.full(n, -1, dtype=np.int64)
    best_channel = np.full(n, -1, dtype=np.int64)
    channels = list(Channel)
    parts: list[pa.Array] = []
    # Ties go to the first offer in (priority desc, offer id asc) order: update on > only.
    order = sorted(
        range(len(catalog.offers)),
        key=lambda j: (-catalog.offers[j].priority, catalog.offers[j].offer_id),
    )
    for j in order:
        offer = catalog.offers[j]
        rule = np.full(n, "", dtype=object)
        open_ = none.copy()
        if not offer.valid_from <= day <= offer.valid_until:
            rule[:] = ExclusionRule.VALIDITY.value
        else:
            open_ = ~none
        if offer.countries:
            in_country = np.asarray(
                pc.fill_null(
                    pc.is_in(country, value_set=pa.array(offer.countries)), False
                ).to_numpy(zero_copy_only=False),
                bool,
            )
            rule[open_ & ~in_country] = ExclusionRule.COUNTRY.value
            open_ &= in_country
        low = scores < offer.min_score
        rule[open_ & low] = ExclusionRule.MIN_SCORE.value
        open_ &= ~low
        chosen = np.full(n, -1, dtype=np.int64)
        any_reachable = none.copy()
        for c in reversed(offer.channels):  # the first preferred channel wins
            ok = reachable.get(c, none)
            any_reachable |= ok
            if offer.consent_required:
                ok = ok & consent.get(c, none)
            chosen[ok] = channels.index(c)
        rule[open_ & ~any_reachable] = ExclusionRule.CHANNEL.value
        rule[open_ & any_reachable & (chosen < 0)] = ExclusionRule.CONSENT.value
        eligible = open_ & (chosen >= 0)
        ev = scores * offer.value
        better = eligible & (ev > best_ev)
        best_ev[better] = ev[better]
        best_offer[better] = j
        best_channel[better] = chosen[better]
        excluded = rule != ""
        text = np.full(n, None, dtype=object)
        text[excluded] = [f"{offer.offer_id}:{r}" for r in rule[excluded]]
        parts.append(pa.array(text, pa.string()))
    offer_ids = np.array([o.offer_id for o in catalog.offers] + [None], dtype=object)
    channel_names = np.array([c.value for c in channels] + [None], dtype=object)
    exclusions = join_present(parts, ";", n)
    return BatchDecision(
        offer_id=pa.array(offer_ids[best_offer], pa.string()),
        channel=pa.array(channel_names[best_channel], pa.string()),
        expected_value=np.where(best_offer >= 0, best_ev, np.nan),
        exclusions=exclusions,
    )
