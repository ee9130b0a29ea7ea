"""Features that read a transaction log by purchase day, as of a cutoff.

Purchases are positive amounts strictly before the cutoff; several on one (UTC) day are
one purchase day. From each customer's purchase days come the rhythm (mean, spread and
last of the gaps between them, and the current gap against the usual one), the trend
(purchase days in a recent window against the window before it), the value of the first
and the last purchase day, and a buy-till-you-die model's view
(:mod:`sluice.features.btyd`). Optional log columns add units, orders and products; a
log without them leaves those features missing.
"""

from __future__ import annotations

import numpy as np

from sluice.data.population import US_PER_DAY
from sluice.features.btyd import bgnbd_features
from sluice.features.sources import History

LOG_FEATURES = (
    "purchase_days_lifetime",
    "purchase_days_90d",
    "purchase_days_365d",
    "interval_mean_days",
    "interval_std_days",
    "last_gap_days",
    "gap_ratio",
    "trend_90d",
    "trend_180d",
    "first_order_value",
    "last_order_value",
    "btyd_expected_purchases",
    "btyd_p_alive",
    "btyd_p_purchase",
    "units_per_purchase_day",
    "orders_lifetime",
    "distinct_products_lifetime",
)
"""Every feature :func:`log_features` computes."""


def _trend(recent: np.ndarray, before: np.ndarray) -> np.ndarray:
    """(recent - before) / (recent + before): 1 only recent, -1 only before, missing if none."""
    total = recent + before
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, (recent - before) / np.maximum(total, 1), np.nan)


def _distinct(owner: np.ndarray, codes: np.ndarray | None, n: int) -> np.ndarray:
    """Distinct non-negative ``codes`` per owner; missing for all without the column."""
    if codes is None:
        return np.full(n, np.nan)
    ok = codes >= 0
    pairs = np.unique(np.column_stack([owner[ok], codes[ok]]), axis=0)
    return np.bincount(pairs[:, 0], minlength=n).astype(np.float64)


def log_features(h: History, cut: int, n: int, horizon_days: int) -> dict[str, np.ndarray]:
    """Every feature in :data:`LOG_FEATURES` for the ``n`` customers of ``h``."""
    seen = (h.tx_us < cut) & (h.tx_amount > 0)
    owner, ts, amount = h.tx_owner[seen], h.tx_us[seen], h.tx_amount[seen]
    cut_day = cut // US_PER_DAY
    day = ts // US_PER_DAY
    # One row per (customer, purchase day), sorted by customer then day.
    keys, inverse = np.unique(np.column_stack([owner, day]), axis=0, return_inverse=True)
    inverse = inverse.ravel()
    d_owner, d_day = keys[:, 0], keys[:, 1]
    d_spend = np.bincount(inverse, weights=amount, minlength=len(keys))
    days = np.bincount(d_owner, minlength=n)
    has = days > 0
    first_idx = np.searchsorted(d_owner, np.arange(n), side="left")
    last_idx = np.searchsorted(d_owner, np.arange(n), side="right") - 1
    first_day = np.where(has, d_day[np.minimum(first_idx, len(keys) - 1)] if len(keys) else 0, 0)
    last_day = np.where(has, d_day[np.maximum(last_idx, 0)] if len(keys) else 0, 0)

    # Gaps between consecutive purchase days of the same customer.
    same = d_owner[1:] == d_owner[:-1]
    gaps = (d_day[1:] - d_day[:-1])[same].astype(np.float64)
    g_owner = d_owner[1:][same]
    n_gaps = np.bincount(g_owner, minlength=n)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_gap = np.where(n_gaps > 0, (last_day - first_day) / np.maximum(n_gaps, 1), np.nan)
        sq = np.bincount(g_owner, weights=gaps**2, minlength=n) / np.maximum(n_gaps, 1)
        std_gap = np.where(n_gaps > 1, np.sqrt(np.maximum(sq - mean_gap**2, 0.0)), np.nan)
        current = (cut_day - last_day).astype(np.float64)
        gap_ratio = np.where(n_gaps > 0, current / mean_gap, np.nan)
    last_gap = np.full(n, np.nan)
    has_gap = n_gaps > 0
    last_gap[has_gap] = (d_day[last_idx[has_gap]] - d_day[last_idx[has_gap] - 1]).astype(float)

    def window(lo: int, hi: int) -> np.ndarray:
        m = (d_day >= cut_day - hi) & (d_day < cut_day - lo)
        return np.bincount(d_owner[m], minlength=n)

    spend_first = np.full(n, np.nan)
    spend_last = np.full(n, np.nan)
    spend_first[has] = d_spend[first_idx[has]]
    spend_last[has] = d_spend[last_idx[has]]
    nan = np.full(n, np.nan)
    btyd = bgnbd_features(
        np.where(has, days - 1, nan),
        np.where(has, last_day - first_day, nan),
        np.where(has, cut_day - first_day, nan),
        horizon_days,
    )
    units = nan
    if h.tx_quantity is not None:
        quantity = h.tx_quantity[seen]
        ok = np.isfinite(quantity) & (quantity >= 0)
        total = np.bincount(owner[ok], weights=quantity[ok], minlength=n)
        with np.errstate(divide="ignore", invalid="ignore"):
            units = np.where(has, total / np.maximum(days, 1), np.nan)
    return {
        "purchase_days_lifetime": days,
        "purchase_days_90d": window(0, 90),
        "purchase_days_365d": window(0, 365),
        "interval_mean_days": mean_gap,
        "interval_std_days": std_gap,
        "last_gap_days": last_gap,
        "gap_ratio": gap_ratio,
        "trend_90d": _trend(window(0, 90), window(90, 180)),
        "trend_180d": _trend(window(0, 180), window(180, 360)),
        "first_order_value": spend_first,
        "last_order_value": spend_last,
        "btyd_expected_purchases": btyd.expected_purchases,
        "btyd_p_alive": btyd.p_alive,
        "btyd_p_purchase": btyd.p_purchase,
        "units_per_purchase_day": units,
        "orders_lifetime": _distinct(owner, _sel(h.tx_order, seen), n),
        "distinct_products_lifetime": _distinct(owner, _sel(h.tx_product, seen), n),
    }


def _sel(codes: np.ndarray | None, mask: np.ndarray) -> np.ndarray | None:
    return None if codes is None else codes[mask]
