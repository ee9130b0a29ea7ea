"""The Sluice database: delivery ledger, runs, suppressions (SQLite or PostgreSQL)."""

from sluice.store.db import connect, dispose_all, upgrade

__all__ = ["connect", "dispose_all", "upgrade"]
