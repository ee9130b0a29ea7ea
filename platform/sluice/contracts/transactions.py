"""Feature contract v1 of a propensity model on a transaction log alone.

What ``sluice features build --transactions`` writes: the recency, frequency and monetary
windows of ``propensity@1.0.0`` (same names, so the same baselines apply), plus features
that read the log by purchase day (see :mod:`sluice.features.log_features`). A purchase
day is a UTC day with at least one positive amount; windows are measured back from the
cutoff and nothing at or after it is visible. ``sluice contracts show transactions``
prints it as YAML.
"""

from __future__ import annotations

from sluice.contracts.feature_contract import (
    Direction,
    FeatureContract,
    FeatureKind,
    FeatureSpec,
    NullPolicy,
)
from sluice.contracts.propensity import PROPENSITY_V1

_FLOAT, _INT = FeatureKind.FLOAT, FeatureKind.INT
_MISSING = NullPolicy.MISSING
_DAYS = 36_500.0
_SHARED = (
    "recency_days",
    "frequency_30d",
    "frequency_90d",
    "frequency_365d",
    "frequency_lifetime",
    "monetary_30d",
    "monetary_90d",
    "monetary_365d",
    "monetary_lifetime",
    "avg_order_value_365d",
    "tenure_days",
)


def _f(
    name: str,
    what: str,
    high: float,
    *,
    low: float = 0.0,
    kind: FeatureKind = _FLOAT,
    direction: Direction | None = None,
) -> FeatureSpec:
    return FeatureSpec(
        name=name,
        kind=kind,
        description=what,
        min=low,
        max=high,
        nulls=_MISSING,
        direction=direction,
    )


def _days(name: str, what: str) -> FeatureSpec:
    return FeatureSpec(name=name, kind=_INT, description=what, min=0, max=_DAYS)


TRANSACTIONS_V1 = FeatureContract(
    name="transactions",
    version="1.0.0",
    features=(
        *(PROPENSITY_V1.spec(name) for name in _SHARED),
        _days("purchase_days_lifetime", "Distinct purchase days before the cutoff."),
        _days("purchase_days_90d", "Distinct purchase days in the 90 days before the cutoff."),
        _days("purchase_days_365d", "Distinct purchase days in the 365 days before the cutoff."),
        _f(
            "interval_mean_days",
            "Mean days between consecutive purchase days; missing with fewer than two.",
            _DAYS,
        ),
        _f(
            "interval_std_days",
            "Standard deviation of the days between consecutive purchase days; missing "
            "with fewer than three.",
            _DAYS,
        ),
        _f(
            "last_gap_days",
            "Days between the last two purchase days; missing with fewer than two.",
            _DAYS,
        ),
        _f(
            "gap_ratio",
            "Days from the last purchase day to the cutoff over the mean days between "
            "purchase days (the current gap against the usual one); missing with fewer "
            "than two purchase days.",
            1e6,
        ),
        _f(
            "trend_90d",
            "(a - b) / (a + b), a and b the purchase days in the 90 days before the cutoff "
            "and in the 90 days before those; missing if both are 0.",
            1.0,
            low=-1.0,
        ),
        _f(
            "trend_180d",
            "(a - b) / (a + b), a and b the purchase days in the 180 days before the cutoff "
            "and in the 180 days before those; missing if both are 0.",
            1.0,
            low=-1.0,
        ),
        _f("first_order_value", "Spend on the first purchase day; missing if none.", 1e9),
        _f("last_order_value", "Spend on the last purchase day; missing if none.", 1e9),
        _f(
            "btyd_expected_purchases",
            "Purchase days a BG/NBD model fitted on the history before the cutoff expects "
            "in the label horizon after it; missing where the model could not be fitted.",
            1e6,
            direction=Direction.INCREASING,
        ),
        _f(
            "btyd_p_alive",
            "Probability of still being an active customer under that BG/NBD model; "
            "missing where it could not be fitted.",
            1.0,
            direction=Direction.INCREASING,
        ),
        _f(
            "btyd_p_purchase",
            "Probability of at least one purchase day in the label horizon under that "
            "BG/NBD model; missing where it could not be fitted.",
            1.0,
            direction=Direction.INCREASING,
        ),
        _f(
            "units_per_purchase_day",
            "Units (the log's optional quantity) per purchase day; missing without it.",
            1e9,
        ),
        _f(
            "orders_lifetime",
            "Distinct orders (the log's optional order_id) before the cutoff; missing without it.",
            1e9,
            kind=_INT,
        ),
        _f(
            "distinct_products_lifetime",
            "Distinct products (or categories) bought before the cutoff; missing without "
            "either column.",
            1e9,
            kind=_INT,
        ),
    ),
)
"""The contract of models trained on a transaction log (``sluice features build
--transactions``); ``propensity@1.0.0`` stays the contract of the synthetic base."""
