from __future__ import annotations

import numpy as np
import pytest

from sluice.contracts import PROPENSITY_V1
from sluice.drift import build_reference, psi


def test_psi_of_identical_and_shifted_distributions() -> None:
    assert psi([0.5, 0.5], np.array([0.5, 0.5])) == 0.0
    # (0.6-0.4)*ln(0.6/0.4) + (0.4-0.6)*ln(0.4/0.6) = 0.4*ln(1.5)
    assert psi([0.4, 0.6], np.array([0.6, 0.4])) == pytest.approx(0.4 * np.log(1.5))


def test_reference_bins_reproduce_their_own_proportions() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5_000, len(PROPENSITY_V1.features)))
    X[:, -1] = rng.integers(0, 15, 5_000)
    X[rng.random(X.shape) < 0.1] = np.nan
    ref = build_reference(PROPENSITY_V1, X, rng.random(5_000))
    for j, binning in enumerate(ref.features):
        np.testing.assert_allclose(binning.histogram(X[:, j]), binning.proportions)
        assert binning.proportions[-1] == pytest.approx(np.isnan(X[:, j]).mean())
    shifted = ref.features[0].histogram(X[:, 0] + 1.0)
    assert psi(ref.features[0].proportions, shifted) > 0.25
