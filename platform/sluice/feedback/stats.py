"""Interval estimates and one-sided tests for rates and means (normal approximations).

Rates use Wilson score intervals (sensible at 0 and small counts); differences and
ratio tests use the unpooled normal approximation. Every function is closed-form, so
the guardrails need no statistics package.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054


def normal_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2))


@dataclass(frozen=True)
class Estimate:
    """A mean (or rate) with its variance of the mean."""

    value: float
    var: float
    n: int

    @property
    def se(self) -> float:
        return math.sqrt(max(self.var, 0.0))


def rate(k: int, n: int) -> Estimate:
    p = k / n if n else 0.0
    return Estimate(p, p * (1 - p) / n if n else 0.0, n)


def mean(total: float, total_sq: float, n: int) -> Estimate:
    if n == 0:
        return Estimate(0.0, 0.0, 0)
    m = total / n
    sample_var = (total_sq - n * m * m) / (n - 1) if n > 1 else 0.0
    return Estimate(m, max(sample_var, 0.0) / n, n)


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def normal_interval(e: Estimate, z: float = Z95) -> tuple[float, float]:
    return (e.value - z * e.se, e.value + z * e.se)


def difference(a: Estimate, b: Estimate, z: float = Z95) -> tuple[float, float, float]:
    """``a - b`` with its interval."""
    d = a.value - b.value
    se = math.sqrt(a.var + b.var)
    return (d, d - z * se, d + z * se)


def p_above_ratio(a: Estimate, b: Estimate, ratio: float) -> float:
    """One-sided p-value of ``a <= ratio x b`` (small: ``a`` is above ``ratio x b``)."""
    se = math.sqrt(a.var + ratio * ratio * b.var)
    gap = a.value - ratio * b.value
    if se == 0:
        return 0.0 if gap > 0 and a.n and b.n else 1.0
    return 1.0 - normal_cdf(gap / se)


def p_below_lift(a: Estimate, b: Estimate, min_lift: float) -> float:
    """One-sided p-value of ``a - b >= min_lift`` (small: the lift is below ``min_lift``)."""
    se = math.sqrt(a.var + b.var)
    gap = (a.value - b.value) - min_lift
    if se == 0:
        return 0.0 if gap < 0 and a.n and b.n else 1.0
    return normal_cdf(gap / se)
