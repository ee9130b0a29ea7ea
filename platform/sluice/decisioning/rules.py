"""Next-best-offer rules: eligibility per offer, then the highest expected value.

An offer is eligible when it is valid on the decision date, available in the
customer's country, the customer does not already hold it or another offer of its
exclusive group, the score reaches its ``min_score``, and at least one of its channels
is reachable now and (for offers that need it) consented to; an excluded offer reports
the first rule it fails, in that order. Withdrawn consent and no
consent record both mean no. Eligible offers rank by ``score x value``, ties broken by
priority (higher first) and then offer id, so the same inputs always give the same
decision.
"""

from __future__ import annotations

from datetime import date, datetime

from sluice.contracts.customer import Channel
from sluice.contracts.decisions import (
    Decision,
    DecisionContext,
    Exclusion,
    ExclusionRule,
    OfferCatalog,
    RankedOffer,
)
from sluice.contracts.offers import Offer
from sluice.decisioning.catalog import CatalogSource


def _channel(offer: Offer, ctx: DecisionContext) -> tuple[Channel | None, Exclusion | None]:
    reachable = [c for c in offer.channels if c in ctx.channels]
    if not reachable:
        wanted = ", ".join(c.value for c in offer.channels)
        return None, Exclusion(
            offer_id=offer.offer_id,
            rule=ExclusionRule.CHANNEL,
            detail=f"none of its channels ({wanted}) is reachable",
        )
    if not offer.consent_required:
        return reachable[0], None
    consented = [c for c in reachable if ctx.consents.get(c) is True]
    if consented:
        return consented[0], None
    states = ", ".join(f"{c.value}: {_consent_word(ctx.consents.get(c))}" for c in reachable)
    return None, Exclusion(
        offer_id=offer.offer_id,
        rule=ExclusionRule.CONSENT,
        detail=f"no consent on a reachable channel ({states})",
    )


def _consent_word(state: bool | None) -> str:
    return "no record" if state is None else ("granted" if state else "withdrawn")


def _exclusion(
    offer: Offer, ctx: DecisionContext, score: float, held_groups: set[str], day: date
) -> Exclusion | None:
    oid = offer.offer_id
    if not offer.valid_from <= day <= offer.valid_until:
        return Exclusion(
            offer_id=oid,
            rule=ExclusionRule.VALIDITY,
            detail=f"valid {offer.valid_from} to {offer.valid_until}, not on {day}",
        )
    if offer.countries and ctx.country not in offer.countries:
        return Exclusion(
            offer_id=oid, rule=ExclusionRule.COUNTRY, detail=f"not offered in {ctx.country}"
        )
    if oid in ctx.held_offers:
        return Exclusion(
            offer_id=oid,
            rule=ExclusionRule.ALREADY_HELD,
            detail="the customer already holds this offer",
        )
    if offer.exclusive_group and offer.exclusive_group in held_groups:
        return Exclusion(
            offer_id=oid,
            rule=ExclusionRule.EXCLUSIVITY,
            detail=f"the customer holds another {offer.exclusive_group!r} offer",
        )
    if score < offer.min_score:
        return Exclusion(
            offer_id=oid,
            rule=ExclusionRule.MIN_SCORE,
            detail=f"score {score:.4f} below {offer.min_score}",
        )
    return None


def decide(
    ctx: DecisionContext,
    score: float,
    catalog: OfferCatalog | CatalogSource,
    *,
    decision_id: str,
    model_name: str,
    model_version: str,
    now: datetime,
) -> Decision:
    """The next best offer for the customer in ``ctx`` given the model's ``score``, decided
    at ``now`` (from the caller's clock) for the day ``ctx.at`` names, else today."""
    day = (ctx.at or now).date()
    if isinstance(catalog, CatalogSource):
        catalog = catalog.on(day)
    held_groups = {
        o.exclusive_group
        for o in catalog.offers
        if o.offer_id in ctx.held_offers and o.exclusive_group
    }
    excluded: list[Exclusion] = []
    eligible: list[tuple[float, int, str, Channel]] = []
    for offer in catalog.offers:
        why = _exclusion(offer, ctx, score, held_groups, day)
        channel = None
        if why is None:
            channel, why = _channel(offer, ctx)
        if why is not None:
            excluded.append(why)
            continue
        assert channel is not None
        eligible.append((score * offer.value, offer.priority, offer.offer_id, channel))
    eligible.sort(key=lambda e: (-e[0], -e[1], e[2]))
    ranked = tuple(
        RankedOffer(offer_id=oid, channel=ch, expected_value=ev) for ev, _, oid, ch in eligible
    )
    best = ranked[0] if ranked else None
    return Decision(
        decision_id=decision_id,
        customer_id=ctx.customer_id,
        offer_id=best.offer_id if best else None,
        channel=best.channel if best else None,
        score=score,
        model_name=model_name,
        model_version=model_version,
        expected_value=best.expected_value if best else None,
        ranked=ranked,
        excluded=tuple(excluded),
        catalog=catalog.name,
        decided_at=now,
    )
