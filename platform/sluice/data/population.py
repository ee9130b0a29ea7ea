"""Latent customers: who they are and how likely they are to buy and engage.

Each customer gets a latent purchase propensity ``z`` and an engagement trait
correlated with it. Purchases follow a Poisson process with daily rate
``exp(BASE_LOG_RATE + RATE_SLOPE * z + country effect)`` that drops to
``CHURN_FACTOR`` of itself after the customer's (unobserved) churn date. Features
see the history; labels count purchases after the cutoff; the true propensity for
any window follows from the same rates (:func:`true_propensity`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sluice.data.geography import COUNTRIES

US_PER_DAY = 86_400 * 1_000_000
BASE_LOG_RATE = -5.75
RATE_SLOPE = 0.95
CHURN_FACTOR = 0.15
MEAN_DAYS_TO_CHURN = 700.0
_ID_MULT = np.uint64(0x9E3779B97F4A7C15)
_ID_MASK = np.uint64((1 << 48) - 1)


def day_us(d: date) -> int:
    """Microseconds since the epoch at 00:00 UTC of ``d``."""
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()) * 1_000_000


def customer_ids(index: np.ndarray, seed: int) -> pa.Array:
    """Opaque, unique ids: a bijection of the row index onto 48-bit numbers, in hex."""
    mixed = (index.astype(np.uint64) * _ID_MULT + np.uint64(seed * 7919 + 1)) & _ID_MASK
    return pa.array([f"c{x:012x}" for x in mixed.tolist()], pa.string())


@dataclass(frozen=True)
class Population:
    """One chunk of latent customers (all arrays share the chunk's length)."""

    ids: pa.Array
    country: np.ndarray
    """Index into :data:`COUNTRIES`."""
    zone: list[str]
    signup_us: np.ndarray
    latent: np.ndarray
    engagement: np.ndarray
    rate: np.ndarray
    """Purchases per day before churn."""
    churn_us: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


def draw_population(
    rng: np.random.Generator, start: int, stop: int, *, seed: int, end_us: int, max_tenure_days: int
) -> Population:
    n = stop - start
    shares = np.array([c.share for c in COUNTRIES])
    country = rng.choice(len(COUNTRIES), size=n, p=shares / shares.sum())
    zone_pick = rng.random(n)
    zone = [
        COUNTRIES[c].zones[int(u * len(COUNTRIES[c].zones))]
        for c, u in zip(country.tolist(), zone_pick.tolist(), strict=True)
    ]
    tenure_days = rng.uniform(14, max_tenure_days, size=n)
    signup_us = end_us - (tenure_days * US_PER_DAY).astype(np.int64)
    signup_us -= signup_us % US_PER_DAY
    latent = rng.standard_normal(n)
    engagement = 0.6 * latent + 0.8 * rng.standard_normal(n)
    effect = np.array([c.effect for c in COUNTRIES])[country]
    rate = np.exp(BASE_LOG_RATE + RATE_SLOPE * latent + effect)
    churn_us = signup_us + (rng.exponential(MEAN_DAYS_TO_CHURN, size=n) * US_PER_DAY).astype(
        np.int64
    )
    return Population(
        customer_ids(np.arange(start, stop), seed),
        country,
        zone,
        signup_us,
        latent,
        engagement,
        rate,
        churn_us,
    )


def expected_purchases(
    rate: np.ndarray,
    signup_us: np.ndarray,
    churn_us: np.ndarray,
    start_us: int | np.ndarray,
    stop_us: int | np.ndarray,
) -> np.ndarray:
    """Expected purchases in ``[start, stop)`` under the piecewise rate."""
    lo = np.maximum(start_us, signup_us)
    pre = np.clip(np.minimum(stop_us, churn_us) - lo, 0, None) / US_PER_DAY
    post = np.clip(stop_us - np.maximum(lo, churn_us), 0, None) / US_PER_DAY
    return np.asarray(rate * (pre + CHURN_FACTOR * post), dtype=np.float64)


def true_propensity(truth: pa.Table, cutoff: date, horizon_days: int) -> np.ndarray:
    """P(at least one purchase in ``[cutoff, cutoff + horizon)``) for every truth row."""
    start = day_us(cutoff)
    stop = start + horizon_days * US_PER_DAY
    mu = expected_purchases(
        truth.column("rate_per_day").to_numpy(),
        _us(truth.column("signup_at")),
        _us(truth.column("churn_at")),
        start,
        stop,
    )
    return np.asarray(1.0 - np.exp(-mu), dtype=np.float64)


def _us(col: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(pc.cast(col, pa.int64()).to_numpy(), dtype=np.int64)


def poisson_times(
    rng: np.random.Generator, rate: np.ndarray, start_us: np.ndarray, stop_us: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Event times of independent Poisson processes on ``[start, stop)``, one per row.

    Returns (row index of each event, event time in microseconds).
    """
    span = np.clip(stop_us - start_us, 0, None)
    counts = rng.poisson(rate * span / US_PER_DAY)
    owner = np.repeat(np.arange(len(rate)), counts)
    times = start_us[owner] + (rng.random(len(owner)) * span[owner]).astype(np.int64)
    return owner, times
