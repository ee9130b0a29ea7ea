"""A buy-till-you-die model of each customer's purchase days: BG/NBD (Fader, Hardie and
Lee, 2005), fitted with the ``lifetimes`` library on the history before the cutoff only.

Every customer is summarised as ``x`` (repeat purchase days), ``t_x`` (days from the first
to the last purchase day) and ``T`` (days from the first purchase day to the cutoff). The
model is fitted by maximum likelihood on the distinct ``(x, t_x, T)`` triples, weighted by
how many customers share each (a million customers have a few thousand triples), and
gives per customer the expected purchase days in the next ``horizon_days`` (at most one a
day), the probability of still being active and that of at least one purchase day in the
horizon. Where the fit fails or its answers are not finite
(too little history, no repeat purchases at all), both are missing values, never guesses.

Why ``lifetimes`` (0.11.3): ``btyd`` does not install on Python 3.11 and
``pymc-marketing`` 1.x needs Python 3.12; its 0.19 line fits the same parameters but
compiles its graph first (about 30 s cold, 2.5 s warm, against 0.5 s here) and brings
PyMC, PyTensor, ArviZ and seaborn. The fitter is this module's only contact with the
library, so it can be replaced alone.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass

import numpy as np

MIN_CUSTOMERS = 10
"""Fewer customers than this get missing values: their fit would say nothing."""


@dataclass(frozen=True)
class BtydFeatures:
    """Per customer: expected purchase days in the horizon, the probability of being
    active, and the probability of at least one purchase day in the horizon."""

    expected_purchases: np.ndarray
    p_alive: np.ndarray
    p_purchase: np.ndarray
    params: dict[str, float] | None
    """The fitted ``r, alpha, a, b`` (time in days), or None when there is no fit."""


def _missing(n: int) -> BtydFeatures:
    return BtydFeatures(np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan), None)


def bgnbd_features(
    x: np.ndarray, t_x: np.ndarray, T: np.ndarray, horizon_days: float
) -> BtydFeatures:
    """Fit BG/NBD on ``(x, t_x, T)`` (days; NaN rows are customers without purchases) and
    predict for every row."""
    from lifetimes import BetaGeoFitter

    n = len(x)
    known = np.isfinite(x) & np.isfinite(t_x) & np.isfinite(T) & (T > 0)
    if int(known.sum()) < MIN_CUSTOMERS or not (x[known] > 0).any():
        return _missing(n)
    triples = np.column_stack([x[known], t_x[known], T[known]])
    unique, inverse, counts = np.unique(triples, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    fitter = BetaGeoFitter(penalizer_coef=0.0)
    try:
        # lifetimes prints the optimiser's state when it does not converge.
        with (
            warnings.catch_warnings(),
            np.errstate(all="ignore"),
            contextlib.redirect_stdout(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            fitter.fit(unique[:, 0], unique[:, 1], unique[:, 2], weights=counts)
            expected = np.asarray(
                fitter.conditional_expected_number_of_purchases_up_to_time(
                    float(horizon_days), unique[:, 0], unique[:, 1], unique[:, 2]
                ),
                dtype=np.float64,
            )
            alive = np.asarray(
                fitter.conditional_probability_alive(unique[:, 0], unique[:, 1], unique[:, 2]),
                dtype=np.float64,
            )
    except (ValueError, ArithmeticError, np.linalg.LinAlgError):
        return _missing(n)
    params = {k: float(v) for k, v in fitter.params_.items()}
    if not all(np.isfinite(v) for v in params.values()):
        return _missing(n)
    alive = np.where(np.isfinite(alive), np.clip(alive, 0.0, 1.0), np.nan)
    # Alive at T, a customer's purchase rate is Gamma(r + x, alpha + T) a posteriori and
    # nothing ends it before the next purchase: no purchase day in the next h days has
    # probability ((alpha + T) / (alpha + T + h)) ** (r + x).
    r, alpha = params["r"], params["alpha"]
    with np.errstate(all="ignore"):
        silent = ((alpha + unique[:, 2]) / (alpha + unique[:, 2] + horizon_days)) ** (
            r + unique[:, 0]
        )
    buys = np.clip(alive * (1.0 - silent), 0.0, 1.0)
    out = _missing(n)
    # Purchase days: never more than one a day, whatever a degenerate fit says.
    out.expected_purchases[known] = np.where(
        np.isfinite(expected), np.clip(expected, 0.0, float(horizon_days)), np.nan
    )[inverse]
    out.p_alive[known] = alive[inverse]
    out.p_purchase[known] = np.where(np.isfinite(buys), buys, np.nan)[inverse]
    return BtydFeatures(out.expected_purchases, out.p_alive, out.p_purchase, params)
