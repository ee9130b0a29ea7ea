"""Feature contract v1 of the purchase-propensity model.

Windows are measured back from the cutoff: ``*_30d`` counts events with
``cutoff - 30 days <= t < cutoff``. Nothing at or after the cutoff is visible.
"""

from __future__ import annotations

from sluice.contracts.feature_contract import (
    Direction,
    FeatureContract,
    FeatureKind,
    FeatureSpec,
    NullPolicy,
)

COUNTRIES: tuple[str, ...] = (
    "US", "CA", "GB", "IE", "DE", "FR", "ES", "IT", "NL", "SE", "AU", "NZ", "JP", "BR", "IN",
)  # fmt: skip
"""Countries the v1 model knows; others are quarantined until a new contract version."""

_FLOAT, _INT, _CAT = FeatureKind.FLOAT, FeatureKind.INT, FeatureKind.CATEGORY
_MISSING = NullPolicy.MISSING
_DAYS = 36_500.0


def _count(name: str, what: str, nulls: NullPolicy = NullPolicy.REJECT) -> FeatureSpec:
    return FeatureSpec(name=name, kind=_INT, description=what, min=0, max=1_000_000, nulls=nulls)


def _money(name: str, what: str) -> FeatureSpec:
    return FeatureSpec(name=name, kind=_FLOAT, description=what, min=0, max=1e9)


PROPENSITY_V1 = FeatureContract(
    name="propensity",
    version="1.0.0",
    features=(
        FeatureSpec(
            name="recency_days",
            kind=_FLOAT,
            description="Days from the last purchase to the cutoff; missing if none.",
            min=0,
            max=_DAYS,
            nulls=_MISSING,
            direction=Direction.DECREASING,
        ),
        _count("frequency_30d", "Purchases (positive amounts) in the 30 days before the cutoff."),
        _count("frequency_90d", "Purchases (positive amounts) in the 90 days before the cutoff."),
        _count("frequency_365d", "Purchases (positive amounts) in the 365 days before the cutoff."),
        _count("frequency_lifetime", "Purchases before the cutoff."),
        _money("monetary_30d", "Gross spend (refunds excluded) in the 30 days before the cutoff."),
        _money("monetary_90d", "Gross spend (refunds excluded) in the 90 days before the cutoff."),
        _money(
            "monetary_365d", "Gross spend (refunds excluded) in the 365 days before the cutoff."
        ),
        _money("monetary_lifetime", "Gross spend (refunds excluded) before the cutoff."),
        FeatureSpec(
            name="avg_order_value_365d",
            kind=_FLOAT,
            description="Mean order value in the 365 days before the cutoff; missing if none.",
            min=0,
            max=1e9,
            nulls=_MISSING,
        ),
        FeatureSpec(
            name="tenure_days",
            kind=_INT,
            description="Days from signup (or first purchase) to the cutoff.",
            min=0,
            max=_DAYS,
        ),
        _count(
            "email_sends_90d",
            "Marketing emails sent in the 90 days before the cutoff; missing without "
            "engagement data.",
            _MISSING,
        ),
        FeatureSpec(
            name="email_open_rate_90d",
            kind=_FLOAT,
            description="Opens per email sent in the last 90 days; missing with no sends.",
            min=0,
            max=1,
            nulls=_MISSING,
        ),
        FeatureSpec(
            name="email_click_rate_90d",
            kind=_FLOAT,
            description="Clicks per email sent in the last 90 days; missing with no sends.",
            min=0,
            max=1,
            nulls=_MISSING,
        ),
        _count("web_visits_30d", "Web sessions in the 30 days before the cutoff.", _MISSING),
        _count("web_visits_90d", "Web sessions in the 90 days before the cutoff.", _MISSING),
        FeatureSpec(
            name="days_since_engagement",
            kind=_FLOAT,
            description="Days from the last open, click or visit to the cutoff; missing if none.",
            min=0,
            max=_DAYS,
            nulls=_MISSING,
            direction=Direction.DECREASING,
        ),
        FeatureSpec(
            name="country",
            kind=_CAT,
            description="Country of residence (ISO 3166-1 alpha-2).",
            categories=COUNTRIES,
            nulls=_MISSING,
        ),
    ),
)
"""The contract every propensity model in this repository is trained and served on.

Directions are declared only where they are plain: the longer since the last purchase (or
engagement), the less likely a purchase. They are training hints and leave the contract's
version and digest as they were."""
