"""Offer catalogs and the next-best-offer rules (pure functions, no Ray)."""

from sluice.decisioning.catalog import load_catalog
from sluice.decisioning.rules import decide

__all__ = ["decide", "load_catalog"]
