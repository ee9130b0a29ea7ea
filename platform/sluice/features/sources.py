"""Readers that turn a synthetic base or a real transaction log into arrays.

A :class:`History` holds only what a feature build may read, already mapped to row
positions of its customers. Readers push the time window down to Parquet so that a
build as of one cutoff never loads more than it needs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from sluice.contracts.customer import EngagementKind
from sluice.data.population import US_PER_DAY, day_us
from sluice.errors import InputError

KIND_CODES: dict[str, int] = {k.value: i for i, k in enumerate(EngagementKind)}
LOG_COLUMNS = ("customer_id", "timestamp", "amount")
OPTIONAL_LOG_COLUMNS = ("quantity", "order_id", "product", "category")
"""Read when present: units, the order a line belongs to, and what was bought (``product``
is used where both it and ``category`` are given)."""
LOG_QUARANTINE_SCHEMA = pa.schema(
    [("row", pa.int64()), ("reason", pa.string()), ("record", pa.string())]
)


@dataclass(frozen=True)
class History:
    """Customers and their (time-stamped) activity, as NumPy arrays."""

    customer_ids: pa.Array
    """Unique string ids; positions are the ``*_owner`` values below."""
    signup_us: np.ndarray
    """Signup time per customer (microseconds since the epoch, UTC)."""
    country: pa.Array
    """Country per customer (string, nullable)."""
    tx_owner: np.ndarray
    tx_us: np.ndarray
    tx_amount: np.ndarray
    ev_owner: np.ndarray | None
    """None when the source has no engagement data (features become missing)."""
    ev_us: np.ndarray | None
    ev_kind: np.ndarray | None
    data_end_us: int
    """Exclusive end of the recorded history."""
    quarantine: pa.Table
    """Input rows that could not be read, with reasons (:data:`LOG_QUARANTINE_SCHEMA`)."""
    tx_quantity: np.ndarray | None = None
    """Units per transaction (a log's optional ``quantity``); None without the column."""
    tx_order: np.ndarray | None = None
    """Order per transaction as a code (-1: none), from an optional ``order_id``."""
    tx_product: np.ndarray | None = None
    """Product (or category) per transaction as a code (-1: none), from an optional
    ``product`` or ``category`` column."""


def _us(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(
        pc.cast(pc.cast(col, pa.timestamp("us", tz="UTC")), pa.int64()).to_numpy(), dtype=np.int64
    )


def _owners(ids: pa.ChunkedArray | pa.Array, universe: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Positions of ``ids`` in ``universe`` and a mask of those found."""
    idx = pc.index_in(ids, value_set=universe)
    found = np.asarray(pc.is_valid(idx).to_numpy(zero_copy_only=False), dtype=bool)
    pos = np.asarray(pc.fill_null(idx, -1).to_numpy(), dtype=np.int64)
    return pos, found


def load_synthetic(
    data_dir: Path, cutoff_us: int, until_us: int, lookback_days: int = 365
) -> History:
    """Read a ``sluice data synth`` directory: customers who signed up before the cutoff,
    their purchases before ``until_us`` and their engagement in the lookback window."""
    for name in ("customers", "transactions", "events"):
        if not (data_dir / f"{name}.parquet").exists():
            raise InputError(f"--data: {data_dir} has no {name}.parquet", field="data")
    meta = (
        json.loads((data_dir / "_meta.json").read_text())
        if (data_dir / "_meta.json").exists()
        else {}
    )
    customers = pq.read_table(
        data_dir / "customers.parquet", columns=["customer_id", "country", "signup_date"]
    )
    signup = _us(customers.column("signup_date"))
    keep = signup < cutoff_us
    customers = customers.filter(pa.array(keep))
    universe = customers.column("customer_id").combine_chunks()
    ts = ds.field("timestamp")
    tx = ds.dataset(data_dir / "transactions.parquet").to_table(
        columns=["customer_id", "timestamp", "amount"],
        filter=ts < pa.scalar(until_us, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
    )
    ev_lo = pa.scalar(cutoff_us - lookback_days * US_PER_DAY, pa.int64()).cast(
        pa.timestamp("us", tz="UTC")
    )
    ev_hi = pa.scalar(cutoff_us, pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    ev = ds.dataset(data_dir / "events.parquet").to_table(
        columns=["customer_id", "kind", "timestamp"], filter=(ts >= ev_lo) & (ts < ev_hi)
    )
    tx_owner, tx_found = _owners(tx.column("customer_id"), universe)
    ev_owner, ev_found = _owners(ev.column("customer_id"), universe)
    kinds = pc.cast(ev.column("kind"), pa.string())
    kind_code = pc.index_in(kinds, value_set=pa.array(list(KIND_CODES), pa.string()))
    if "end" in meta:
        data_end = day_us(pd.Timestamp(meta["end"]).date()) + US_PER_DAY
    else:
        data_end = int(_us(tx.column("timestamp")).max(initial=0)) + 1
    return History(
        customer_ids=universe,
        signup_us=signup[keep],
        country=customers.column("country").combine_chunks(),
        tx_owner=tx_owner[tx_found],
        tx_us=_us(tx.column("timestamp"))[tx_found],
        tx_amount=np.asarray(tx.column("amount").to_numpy(), dtype=np.float64)[tx_found],
        ev_owner=ev_owner[ev_found],
        ev_us=_us(ev.column("timestamp"))[ev_found],
        ev_kind=np.asarray(pc.fill_null(kind_code, -1).to_numpy(), dtype=np.int8)[ev_found],
        data_end_us=data_end,
        quarantine=LOG_QUARANTINE_SCHEMA.empty_table(),
    )


def _read_log(path: Path) -> pa.Table:
    if not path.exists():
        raise InputError(f"--transactions: {path} does not exist", field="transactions")
    if path.suffix.lower() in {".parquet", ".pq"}:
        return pq.read_table(path)
    if path.suffix.lower() in {".csv", ".txt"}:
        columns = (*LOG_COLUMNS, *OPTIONAL_LOG_COLUMNS)
        opts = pacsv.ConvertOptions(column_types={c: pa.string() for c in columns})
        return pacsv.read_csv(path, convert_options=opts)
    raise InputError(
        f"--transactions: {path.name} is neither CSV nor Parquet", field="transactions"
    )


def load_transaction_log(path: Path, cutoff_us: int) -> History:
    """Read a real transaction log (CSV or Parquet with at least ``customer_id, timestamp,
    amount``). Unreadable rows are quarantined with their reasons, never dropped silently.
    Naive timestamps are taken as UTC. Customers are those with a purchase before the cutoff;
    tenure counts from their first purchase."""
    table = _read_log(path)
    absent = [c for c in LOG_COLUMNS if c not in table.column_names]
    if absent:
        raise InputError(
            f"--transactions: {path.name} lacks column(s) {', '.join(absent)}", field=absent[0]
        )
    optional = [c for c in OPTIONAL_LOG_COLUMNS if c in table.column_names]
    frame = table.select([*LOG_COLUMNS, *optional]).to_pandas(types_mapper=None)
    ids = frame["customer_id"].astype("string").str.strip()
    when = _timestamps(frame["timestamp"])
    amount = pd.to_numeric(frame["amount"].astype("string"), errors="coerce")
    problems = {
        "customer_id: missing": ids.isna() | (ids == ""),
        "timestamp: not an ISO 8601 time": when.isna(),
        "amount: not a finite number": amount.isna() | ~np.isfinite(amount.fillna(0.0)),
    }
    quantity = None
    if "quantity" in frame:
        text = frame["quantity"].astype("string").str.strip()
        quantity = pd.to_numeric(text, errors="coerce")
        given = text.notna() & (text != "")
        problems["quantity: not a finite number"] = given & (
            quantity.isna() | ~np.isfinite(quantity.fillna(0.0))
        )
    bad = np.zeros(len(frame), dtype=bool)
    for mask in problems.values():
        bad |= np.asarray(mask, dtype=bool)
    quarantine = _log_quarantine(table, problems, bad)
    good = frame.index[~bad]
    ids_ok = pa.array(ids[good].to_numpy(dtype=object), pa.string())
    ts_ok = np.asarray(when[good].dt.as_unit("us").astype("int64").to_numpy(), dtype=np.int64)
    amount_ok = amount[good].to_numpy(dtype=np.float64)
    before = ts_ok < cutoff_us
    universe = (
        pc.unique(ids_ok.filter(pa.array(before))) if before.any() else pa.array([], pa.string())
    )
    owner, found = _owners(ids_ok, universe)
    first = np.full(len(universe), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, owner[found & before], ts_ok[found & before])
    return History(
        customer_ids=universe,
        signup_us=first,
        country=pa.nulls(len(universe), pa.string()),
        tx_owner=owner[found],
        tx_us=ts_ok[found],
        tx_amount=amount_ok[found],
        ev_owner=None,
        ev_us=None,
        ev_kind=None,
        data_end_us=int(ts_ok.max(initial=0)) + 1,
        quarantine=quarantine,
        tx_quantity=(
            None if quantity is None else quantity[good].to_numpy(dtype=np.float64)[found]
        ),
        tx_order=_codes(frame, "order_id", good, found),
        tx_product=_codes(frame, "product" if "product" in frame else "category", good, found),
    )


def _timestamps(column: pd.Series) -> pd.Series:
    """Times as UTC; naive ones are taken as UTC, unreadable ones become NaT."""
    if pd.api.types.is_datetime64_any_dtype(column):
        return pd.to_datetime(column, utc=True)
    return pd.to_datetime(column.astype("string"), errors="coerce", utc=True, format="ISO8601")


def _codes(frame: pd.DataFrame, name: str, good: pd.Index, found: np.ndarray) -> np.ndarray | None:
    """An optional text column as integer codes per kept row (-1: empty), or None."""
    if name not in frame:
        return None
    text = frame[name].astype("string").str.strip()[good]
    codes, _ = pd.factorize(text.mask(text == ""), use_na_sentinel=True)
    out: np.ndarray = np.asarray(codes, dtype=np.int64)[found]
    return out


def _log_quarantine(table: pa.Table, problems: dict[str, pd.Series], bad: np.ndarray) -> pa.Table:
    rows = np.flatnonzero(bad)
    if len(rows) == 0:
        return LOG_QUARANTINE_SCHEMA.empty_table()
    reasons = ["; ".join(msg for msg, mask in problems.items() if bool(mask.iloc[r])) for r in rows]
    records = [
        json.dumps(rec, default=str, sort_keys=True)
        for rec in table.take(pa.array(rows)).to_pylist()
    ]
    return pa.table(
        [pa.array(rows, pa.int64()), pa.array(reasons), pa.array(records)],
        schema=LOG_QUARANTINE_SCHEMA,
    )
