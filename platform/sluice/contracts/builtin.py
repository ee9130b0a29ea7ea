"""The feature contracts that ship with Sluice, by key (``name@version``)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from sluice.contracts.feature_contract import FeatureContract
from sluice.contracts.propensity import PROPENSITY_V1
from sluice.contracts.transactions import TRANSACTIONS_V1

BUILTIN_CONTRACTS: Mapping[str, FeatureContract] = MappingProxyType(
    {c.key: c for c in (PROPENSITY_V1, TRANSACTIONS_V1)}
)
"""Every built-in contract: ``propensity@1.0.0`` (the synthetic base; the default of
training and scoring) and ``transactions@1.0.0`` (a transaction log alone)."""


def builtin_contract(ref: str) -> FeatureContract | None:
    """The built-in contract ``ref`` names (``name@version``, or ``name`` for its latest
    version), or None."""
    if ref in BUILTIN_CONTRACTS:
        return BUILTIN_CONTRACTS[ref]
    named = [c for c in BUILTIN_CONTRACTS.values() if c.name == ref]
    if not named:
        return None
    return max(named, key=lambda c: tuple(int(p) for p in c.version.split(".")))
