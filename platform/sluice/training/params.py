"""LightGBM parameters that scale with the training data instead of one fixed set.

The fixed defaults of earlier versions (63 leaves, 100 rows a leaf, learning rate 0.05)
were tuned on a 200,000-row synthetic base; on a 20,000-row real log a smaller model
does better. Here the size of the trees, the rows a leaf needs, the learning rate and
the L2 penalty follow the number of training rows and the rarer class's share:

* ``num_leaves`` grows with the rows (63 from 200,000 rows, 12 at 18,000, 5 at 5,000);
* ``min_data_in_leaf`` asks for about 12 rows of the rarer class in every leaf, more on
  small sets (where every split is noisier), never more than a leaf can get;
* the learning rate and ``lambda_l2`` are 0.05 and 1.0 from 100,000 rows and move to
  slower, more penalised learning below that.

Monotone constraints come from the feature contract's declared directions.
"""

from __future__ import annotations

import math
from typing import Any

from sluice.contracts.feature_contract import FeatureContract
from sluice.errors import InputError

BASE_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "metric": "binary_logloss",
    "feature_fraction": 0.9,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "max_bin": 255,
    "verbose": -1,
}
"""What does not depend on the data."""

LARGE = 100_000
"""From this many training rows the learning rate and penalty stay at their base values."""


def _clip(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def scaled_params(n_rows: int, base_rate: float) -> dict[str, Any]:
    """Tree size, leaf size, learning rate and L2 penalty for ``n_rows`` training rows
    whose positive share is ``base_rate``."""
    if n_rows < 1:
        raise InputError("n_rows: training needs at least one row", field="n_rows")
    if not 0 < base_rate < 1:
        raise InputError(
            f"base_rate: {base_rate} must be between 0 and 1 (both classes present)",
            field="base_rate",
        )
    minority = min(base_rate, 1 - base_rate)
    small = _clip(math.sqrt(LARGE / n_rows), 1.0, 4.0)  # 1 for large sets, up to 4
    leaves = int(_clip(round(63 * (n_rows / 200_000) ** 0.7), 4, 63))
    room = max(20, n_rows // (2 * leaves))  # every leaf can still be that large
    min_leaf = int(_clip(round(12 / minority * small), 20, room))
    return {
        "num_leaves": leaves,
        "min_data_in_leaf": min_leaf,
        "learning_rate": round(0.05 / math.sqrt(small), 4),
        "lambda_l2": round(small, 3),
    }


def training_params(
    n_rows: int, base_rate: float, contract: FeatureContract, seed: int, threads: int
) -> dict[str, Any]:
    """Every LightGBM parameter of one training run (before the caller's overrides)."""
    params: dict[str, Any] = {
        **BASE_PARAMS,
        **scaled_params(n_rows, base_rate),
        "seed": seed,
        "num_threads": threads,
    }
    constraints = contract.monotone_constraints
    if any(constraints):
        params["monotone_constraints"] = constraints
        params["monotone_constraints_method"] = "basic"
    return params
