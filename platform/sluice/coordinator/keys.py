"""Deterministic identifiers: the same run, customer and channel always get the same keys."""

from __future__ import annotations

import hashlib


def idempotency_key(run_id: str, customer_id: str, channel: str) -> str:
    return hashlib.sha256(f"{run_id}\x1f{customer_id}\x1f{channel}".encode()).hexdigest()[:40]


def decision_id(run_id: str, customer_id: str) -> str:
    return "dec_" + hashlib.sha256(f"{run_id}\x1f{customer_id}".encode()).hexdigest()[:28]
