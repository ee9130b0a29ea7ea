"""Helpers of the decision-service tests over real HTTP."""

from __future__ import annotations

from typing import Any


def features_of(row: dict[str, Any]) -> dict[str, Any]:
    """A feature row without its customer id (a decide request's ``features``)."""
    return {k: v for k, v in row.items() if k != "customer_id"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
