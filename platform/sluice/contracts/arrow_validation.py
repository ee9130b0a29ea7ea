"""Vectorised validation of whole Arrow batches against a feature contract.

Every check is a column-wide pyarrow/NumPy operation; Python only touches the rows
that fail, to render their record. A row with any problem is quarantined with every
reason found (``"tenure_days: value -3 below minimum 0; country: 'XX' is not an
allowed category"``); the valid rows come back as the float64 matrix the model takes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sluice.arrowutil import join_present
from sluice.contracts._base import ID_PATTERN
from sluice.contracts.feature_contract import FeatureKind, NullPolicy

if TYPE_CHECKING:
    from sluice.contracts.feature_contract import FeatureContract, FeatureSpec

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("customer_id", pa.string()),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("record", pa.string(), nullable=False),
    ]
)
"""Schema of quarantined rows: the id (when readable), every reason, the raw row as JSON."""

_NUMBER = r"^\s*[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$"


@dataclass(frozen=True)
class ValidatedBatch:
    """The outcome of checking one batch."""

    ids: pa.Array
    """Customer ids of the valid rows (string)."""
    matrix: np.ndarray
    """Model input of the valid rows: float64, shape (rows, features), NaN = missing."""
    quarantine: pa.Table
    """Rejected rows, in :data:`QUARANTINE_SCHEMA`."""
    rows: np.ndarray
    """Positions of the valid rows in the input batch (to align labels or extra columns)."""

    @property
    def n_valid(self) -> int:
        return len(self.ids)

    @property
    def n_quarantined(self) -> int:
        return int(self.quarantine.num_rows)


@dataclass
class _Problem:
    """Rows failing one check; the message is ``prefix + value + suffix``, rendered only
    for failing rows (``value`` omitted when ``values`` is None)."""

    mask: np.ndarray
    prefix: str
    values: pa.Array | np.ndarray | None = None
    suffix: str = ""

    def render(self, rows: pa.Array) -> pa.Array:
        if self.values is None:
            return pa.array([self.prefix] * len(rows), pa.string())
        picked = (
            self.values.take(rows)
            if isinstance(self.values, pa.Array)
            else pa.array(self.values[rows.to_numpy()])
        )
        text = pc.cast(picked, pa.string())
        return pc.binary_join_element_wise(self.prefix, text, self.suffix, "")


def _as_array(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_large_string(arr.type) or pa.types.is_string_view(arr.type):
        arr = arr.cast(pa.string())
    return arr


def _mask(arr: pa.Array) -> np.ndarray:
    """A boolean Arrow array as a NumPy mask, null counting as False."""
    return np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=bool)


def _check_ids(
    contract: FeatureContract, batch: pa.Table | pa.RecordBatch
) -> tuple[pa.Array, list[_Problem]]:
    name, n = contract.id_column, batch.num_rows
    if name not in batch.schema.names:
        return pa.nulls(n, pa.string()), [_Problem(np.ones(n, bool), f"{name}: missing column")]
    ids = _as_array(batch.column(name))
    if not pa.types.is_string(ids.type):
        msg = f"{name}: expected an opaque string id, got {ids.type}"
        return pc.cast(ids, pa.string()), [_Problem(np.ones(n, bool), msg)]
    blank_mask = _mask(pc.or_kleene(pc.is_null(ids), pc.equal(ids, "")))
    shaped = _mask(pc.match_substring_regex(ids, ID_PATTERN))
    return ids, [
        _Problem(blank_mask, f"{name}: missing"),
        _Problem(
            ~blank_mask & ~shaped,
            f"{name}: longer than 128 characters or contains white space or control characters",
        ),
    ]


def _numeric(spec: FeatureSpec, arr: pa.Array) -> tuple[np.ndarray, list[_Problem]]:
    """The column as float64 (NaN where absent or unreadable) and what was wrong."""
    problems: list[_Problem] = []
    t = arr.type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        parsed = pc.cast(arr, pa.float64())
    elif pa.types.is_boolean(t):
        parsed = pc.cast(pc.cast(arr, pa.int8()), pa.float64())
    elif pa.types.is_string(t):
        ok = pc.fill_null(pc.match_substring_regex(arr, _NUMBER), False)
        bad = pc.and_(pc.is_valid(arr), pc.invert(ok))
        problems.append(_Problem(_mask(bad), f"{spec.name}: '", arr, "' is not a number"))
        cleaned = pc.if_else(ok, pc.utf8_trim_whitespace(arr), pa.scalar(None, pa.string()))
        parsed = pc.cast(cleaned, pa.float64())
    else:
        msg = f"{spec.name}: expected a number, got {t}"
        return np.full(len(arr), np.nan), [_Problem(_mask(pc.is_valid(arr)), msg)]

    v = np.asarray(parsed.to_numpy(zero_copy_only=False), dtype=np.float64)  # null -> NaN
    infinite = np.isinf(v)
    problems.append(_Problem(infinite, f"{spec.name}: value is not finite"))
    with np.errstate(invalid="ignore"):
        if spec.kind is FeatureKind.INT:
            frac = ~infinite & (v != np.floor(v)) & ~np.isnan(v)
            problems.append(_Problem(frac, f"{spec.name}: value ", v, " is not an integer"))
        if spec.min is not None:
            problems.append(
                _Problem(v < spec.min, f"{spec.name}: value ", v, f" below minimum {spec.min:g}")
            )
        if spec.max is not None:
            high = (v > spec.max) & ~infinite
            problems.append(
                _Problem(high, f"{spec.name}: value ", v, f" above maximum {spec.max:g}")
            )
    return v, problems


def _category(spec: FeatureSpec, arr: pa.Array) -> tuple[np.ndarray, list[_Problem]]:
    if not pa.types.is_string(arr.type):
        msg = f"{spec.name}: expected a category string, got {arr.type}"
        return np.full(len(arr), np.nan), [_Problem(_mask(pc.is_valid(arr)), msg)]
    codes = pc.index_in(arr, value_set=pa.array(spec.categories, pa.string()))
    unknown = pc.and_(pc.is_valid(arr), pc.is_null(codes))
    problem = _Problem(_mask(unknown), f"{spec.name}: '", arr, "' is not an allowed category")
    values = np.asarray(pc.cast(codes, pa.float64()).to_numpy(zero_copy_only=False), np.float64)
    return values, [problem]


def _feature(
    spec: FeatureSpec, batch: pa.Table | pa.RecordBatch
) -> tuple[np.ndarray, list[_Problem]]:
    n = batch.num_rows
    if spec.name not in batch.schema.names:
        return np.full(n, np.nan), [_Problem(np.ones(n, bool), f"{spec.name}: missing column")]
    arr = _as_array(batch.column(spec.name))
    checker = _category if spec.kind is FeatureKind.CATEGORY else _numeric
    values, problems = checker(spec, arr)
    if spec.nulls is NullPolicy.REJECT:
        already = np.zeros(n, bool)
        for p in problems:
            already |= p.mask
        problems.append(_Problem(np.isnan(values) & ~already, f"{spec.name}: null not allowed"))
    return values, problems


def _records(batch: pa.Table | pa.RecordBatch, rows: np.ndarray) -> list[str]:
    """The raw rows as strict JSON (non-finite floats become strings such as "nan")."""
    picked = batch.take(pa.array(rows, pa.int64()))
    return [
        json.dumps(
            {k: _plain(v) for k, v in r.items()}, default=str, sort_keys=True, allow_nan=False
        )
        for r in picked.to_pylist()
    ]


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return repr(value)
    return value


def validate_batch(contract: FeatureContract, batch: pa.Table | pa.RecordBatch) -> ValidatedBatch:
    """Split ``batch`` into model-ready valid rows and quarantined rows with reasons."""
    ids, problems = _check_ids(contract, batch)
    columns: list[np.ndarray] = []
    for spec in contract.features:
        col, found = _feature(spec, batch)
        columns.append(col)
        problems.extend(found)

    bad = np.zeros(batch.num_rows, dtype=bool)
    for p in problems:
        bad |= p.mask
    good_idx = np.flatnonzero(~bad)
    bad_idx = np.flatnonzero(bad)

    if len(good_idx) == batch.num_rows:
        matrix = np.column_stack(columns) if columns else np.empty((batch.num_rows, 0))
        valid_ids = ids
    else:
        matrix = np.column_stack([c[good_idx] for c in columns])
        valid_ids = ids.take(pa.array(good_idx, pa.int64()))

    quarantine = _quarantine(batch, ids, problems, bad_idx)
    return ValidatedBatch(
        ids=valid_ids, matrix=np.ascontiguousarray(matrix), quarantine=quarantine, rows=good_idx
    )


def _quarantine(
    batch: pa.Table | pa.RecordBatch, ids: pa.Array, problems: list[_Problem], bad_idx: np.ndarray
) -> pa.Table:
    if len(bad_idx) == 0:
        return QUARANTINE_SCHEMA.empty_table()
    take = pa.array(bad_idx, pa.int64())
    parts: list[pa.Array] = []
    for p in problems:
        sub = p.mask[bad_idx]
        if not sub.any():
            continue
        parts.append(pc.if_else(pa.array(sub), p.render(take), pa.scalar(None, pa.string())))
    reason = join_present(parts, "; ", len(bad_idx))
    return pa.table(
        [ids.take(take), reason, pa.array(_records(batch, bad_idx), pa.string())],
        schema=QUARANTINE_SCHEMA,
    )
