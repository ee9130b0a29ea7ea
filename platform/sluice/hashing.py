"""Deterministic, salted hashing of ids into [0, 1) for splits and assignments."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np


def unit_hash(ids: Iterable[str], salt: str) -> np.ndarray:
    """A stable float in [0, 1) per id: the same id and salt always give the same value."""
    prefix = salt.encode() + b":"
    out = [
        int.from_bytes(hashlib.blake2b(prefix + i.encode(), digest_size=8).digest(), "big")
        for i in ids
    ]
    return np.asarray(out, dtype=np.uint64) / np.float64(2**64)
