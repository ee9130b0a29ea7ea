"""The coordinator: gates, ledger reservations, delivery, audit (the only part that acts)."""

from sluice.coordinator.core import CoordinatorCore

__all__ = ["CoordinatorCore"]
