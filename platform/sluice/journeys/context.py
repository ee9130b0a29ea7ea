"""What a journey knows about a customer: the profile, a model score, recent events.

Profiles and feature rows are read once per file and indexed by customer id; scores
are computed per batch with the model version the alias names when the engine starts
(pinned for the engine's lifetime, as a campaign run pins its version). A journey whose
``features`` is the online store's ``feature_store.yaml`` (written by ``sluice features
materialize``) reads each batch's rows from the online store instead, the lookup the
decision service uses, so a branch or a send scores the same row a decision by id does:
only rows dated at or before the batch's time and within the contract's freshness limit
are scored (the others are left unscored, like unknown customers).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sluice.contracts.clock import SYSTEM_CLOCK, Clock
from sluice.errors import InputError
from sluice.online.config import OnlineStoreConfig
from sluice.online.lookup import OnlineFeatures

_TABLES: dict[tuple[str, float], tuple[dict[str, int], pa.Table]] = {}
_ZONES: dict[tuple[str, float], tuple[np.ndarray, list[str]] | None] = {}


def _version(path: Path) -> tuple[str, float]:
    return (str(path), path.stat().st_mtime if path.is_file() else 0.0)


def indexed(
    path: Path, version: tuple[str, float] | None = None
) -> tuple[dict[str, int], pa.Table]:
    """A Parquet table and its row index by ``customer_id`` (cached per file version)."""
    key = version or _version(path)
    found = _TABLES.get(key)
    if found is None:
        table = pq.read_table(path).combine_chunks()
        if "customer_id" not in table.column_names:
            raise InputError(f"{path}: has no customer_id column", field="customer_id")
        ids = table.column("customer_id").to_pylist()
        found = _TABLES[key] = ({str(c): i for i, c in enumerate(ids)}, table)
    return found


def _zones(version: tuple[str, float], table: pa.Table) -> tuple[np.ndarray, list[str]] | None:
    """Each row's time zone as a code into a list of names (``UTC`` where it has none),
    read once per file version, so a lookup per customer costs no Arrow call (None: the
    table has no time zones)."""
    if version in _ZONES:
        return _ZONES[version]
    found: tuple[np.ndarray, list[str]] | None = None
    if "time_zone" in table.column_names:
        column = table.column("time_zone").combine_chunks()
        if pa.types.is_null(column.type):
            found = (np.zeros(len(column), dtype=np.int64), ["UTC"])
        else:
            encoded = pc.dictionary_encode(column)
            names = [str(v or "UTC") for v in encoded.dictionary.to_pylist()] + ["UTC"]
            found = (pc.fill_null(encoded.indices, len(names) - 1).to_numpy(), names)
    _ZONES[version] = found
    return found


class Profiles:
    """Customer profiles by id (consent, time zone, addresses, attributes)."""

    def __init__(self, path: Path) -> None:
        self.version = _version(path)
        self.index, self.table = indexed(path, self.version)

    def take(self, ids: Sequence[str]) -> tuple[pa.Table, np.ndarray]:
        """Rows for ``ids`` (nulls where unknown) and the mask of known ones."""
        pos = np.array([self.index.get(c, -1) for c in ids], dtype=np.int64)
        rows = self.table.take(pa.array(np.where(pos >= 0, pos, 0), pa.int64()))
        return rows, pos >= 0

    def attributes(self, customer_id: str) -> dict[str, Any]:
        i = self.index.get(customer_id)
        if i is None:
            return {}
        row = self.table.slice(i, 1).to_pylist()[0]
        return {k: v for k, v in row.items() if not (isinstance(v, float) and math.isnan(v))}

    def zone(self, customer_id: str) -> str:
        i = self.index.get(customer_id)
        zones = _zones(self.version, self.table)
        if i is None or zones is None:
            return "UTC"
        codes, names = zones
        return names[int(codes[i])]


@dataclass(frozen=True)
class Scored:
    scores: dict[str, float]
    model_name: str
    model_version: str
    matrix: dict[str, np.ndarray]
    names: tuple[str, ...] = ()
    """Feature names of the matrix columns."""
    features_at: dict[str, datetime] = field(default_factory=dict)
    """The feature timestamp of each customer's row, when it came from the online store."""


def is_online_store(features: Path) -> bool:
    """Whether a journey's ``features`` names the online store (its feature_store.yaml)."""
    return features.suffix in (".yaml", ".yml")


class Scorer:
    """Scores customers with one model version on the journey's feature rows: a Parquet
    file, or the online store a ``feature_store.yaml`` describes."""

    def __init__(self, features: Path, model: Any, clock: Clock = SYSTEM_CLOCK) -> None:
        import tempfile

        from sluice.scoring.predictor import prepare_predictor

        self.model = model
        self.clock = clock
        # Any flavour: LightGBM's booster, or the model's own predict for the others.
        self.predictor = prepare_predictor(model, "booster", Path(tempfile.gettempdir())).build()
        self.names: tuple[str, ...] = tuple(model.contract.names)
        self.online: OnlineFeatures | None = None
        if is_online_store(features):
            config = OnlineStoreConfig.from_feature_store_yaml(features)
            self.online = OnlineFeatures(config, model.contract)
        else:
            self.index, self.table = indexed(features)

    def score(self, ids: Sequence[str], at: datetime | None = None) -> Scored:
        """Scores of the customers with usable feature rows (as of ``at``, default now)."""
        unique = list(dict.fromkeys(ids))
        stamps: dict[str, datetime] = {}
        if self.online is not None:
            found = self.online.lookup(unique, at or self.clock.now())
            usable = [f for f in found if f.row is not None and f.features_at is not None]
            stamps = {f.customer_id: f.features_at for f in usable if f.features_at}
            id_column = self.model.contract.id_column
            rows = (
                pa.Table.from_pylist(
                    [{id_column: f.customer_id, **(f.row or {})} for f in usable],
                    schema=self.model.contract.arrow_schema(),
                )
                if usable
                else None
            )
        else:
            known = [c for c in unique if c in self.index]
            rows = (
                self.table.take(pa.array([self.index[c] for c in known], pa.int64()))
                if known
                else None
            )
        if rows is None:
            return Scored({}, self.model.name, self.model.version, {}, self.names)
        checked = self.model.contract.validate_batch(rows)
        valid = [str(c) for c in checked.ids.to_pylist()]
        probs = self.predictor.predict(checked.matrix) if valid else np.empty(0)
        return Scored(
            {c: float(p) for c, p in zip(valid, probs, strict=True)},
            self.model.name,
            self.model.version,
            {c: checked.matrix[i] for i, c in enumerate(valid)},
            self.names,
            {c: stamps[c] for c in valid if c in stamps},
        )
