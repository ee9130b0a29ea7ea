"""Drift: reference distributions stored with models and the population stability index."""

from sluice.drift.reference import Binning, Reference, build_reference, psi

__all__ = ["Binning", "Reference", "build_reference", "psi"]
