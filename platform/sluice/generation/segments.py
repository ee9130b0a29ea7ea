"""Segment-level briefs from scores and features: the allow-list in action.

A recipient's prompt key depends only on segment attributes (propensity tier, lifecycle
stage, country), the offer, the channel, the locale and the variant; everything
personal stays out, and recipients who share a key share one generated draft.
"""

from __future__ import annotations

import math

from sluice.contracts.briefs import BrandVoice, Brief, Lifecycle, PropensityTier, SegmentProfile
from sluice.contracts.customer import Channel
from sluice.contracts.offers import Offer

HIGH, MEDIUM = 0.30, 0.10


def tier(score: float) -> PropensityTier:
    return (
        PropensityTier.HIGH
        if score >= HIGH
        else PropensityTier.MEDIUM
        if score >= MEDIUM
        else PropensityTier.LOW
    )


def lifecycle(tenure_days: float | None, recency_days: float | None) -> Lifecycle:
    if tenure_days is not None and not math.isnan(tenure_days) and tenure_days < 90:
        return Lifecycle.NEW
    if recency_days is None or math.isnan(recency_days) or recency_days > 365:
        return Lifecycle.DORMANT
    return Lifecycle.ACTIVE if recency_days <= 90 else Lifecycle.LAPSING


def segment(
    score: float, country: str, tenure_days: float | None, recency_days: float | None
) -> SegmentProfile:
    return SegmentProfile(
        tier=tier(score), lifecycle=lifecycle(tenure_days, recency_days), country=country
    )


def brief_for(
    offer: Offer,
    channel: Channel,
    locale: str,
    profile: SegmentProfile,
    variant: str = "a",
    voice: BrandVoice | None = None,
) -> Brief:
    return Brief(
        offer=offer,
        channel=channel,
        locale=locale,
        segment=profile,
        variant=variant,
        voice=voice or BrandVoice(),
    )
