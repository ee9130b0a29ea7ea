"""``sluice features materialize``: a feature table into the online store, in batches.

Each Parquet file (one, or every file of a directory, each read with its own schema) is
streamed in record batches; every batch is validated against the feature contract
exactly as batch scoring validates it, the valid rows are written with their feature
timestamp and the rest are quarantined with their reasons (``OUT.quarantine.parquet``
beside a file, ``DIR/_quarantine.parquet`` for a directory), never failing the job.

The feature timestamp of a row is its ``feature_timestamp`` column when the file has one,
else the cutoff ``sluice features build`` records in the file's metadata (00:00 UTC of
the cutoff day: the features saw everything before it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sluice.contracts.arrow_validation import QUARANTINE_SCHEMA
from sluice.contracts.feature_contract import FeatureContract
from sluice.errors import InputError
from sluice.online.store import OnlineStore

TIMESTAMP_COLUMN = "feature_timestamp"
BATCH_ROWS = 65_536


@dataclass
class MaterializeReport:
    rows: int = 0
    """Rows written to the online store."""
    quarantined: int = 0
    skipped_newer: int = 0
    """Valid rows not written because the store holds a later row for the id."""
    seconds: float = 0.0
    store: str = ""
    view: str = ""
    features_at: list[str] = field(default_factory=list)
    """The distinct feature timestamps written."""
    quarantine_file: str | None = None

    @property
    def rows_per_s(self) -> float:
        return round(self.rows / self.seconds, 1) if self.seconds > 0 else 0.0


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(p for p in path.rglob("*.parquet") if not p.name.startswith("_"))
        if found:
            return found
    raise InputError(
        f"--features: {path} is not a Parquet file or a directory of them", field="features"
    )


def _cutoff(schema: pa.Schema, path: Path) -> datetime | None:
    raw = (schema.metadata or {}).get(b"sluice.cutoff")
    if raw is None:
        return None
    try:
        day = datetime.fromisoformat(raw.decode())
    except ValueError as exc:
        raise InputError(
            f"--features: {path.name}: sluice.cutoff {raw!r} is not a date", field="features"
        ) from exc
    return day.replace(tzinfo=UTC) if day.tzinfo is None else day.astimezone(UTC)


def _stamped(
    batch: pa.Table, cutoff: datetime | None, path: Path
) -> Iterator[tuple[datetime, pa.Table]]:
    """The batch's rows grouped by feature timestamp."""
    if TIMESTAMP_COLUMN not in batch.column_names:
        if cutoff is None:
            raise InputError(
                f"--features: {path.name} has no {TIMESTAMP_COLUMN} column and no sluice.cutoff "
                "metadata, so its rows have no feature timestamp (build it with `sluice features "
                f"build`, or add a {TIMESTAMP_COLUMN} column)",
                field=TIMESTAMP_COLUMN,
            )
        yield cutoff, batch
        return
    stamps = pc.cast(batch.column(TIMESTAMP_COLUMN), pa.timestamp("us", tz="UTC"))
    for value in pc.unique(stamps).to_pylist():
        if value is None:
            continue
        yield value.astimezone(UTC), batch.filter(pc.equal(stamps, pa.scalar(value, stamps.type)))


def materialize(
    features: Path,
    contract: FeatureContract,
    store: OnlineStore,
    progress: Callable[[int, int], None] = lambda done, total: None,
    batch_rows: int = BATCH_ROWS,
) -> MaterializeReport:
    """Write every valid row of ``features`` to ``store``; ``progress(rows_read, total)``
    after each batch."""
    files = _files(features)
    total = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    report = MaterializeReport(store=store.url, view=store.view.name)
    store.prepare()
    started = time.perf_counter()
    quarantine: list[pa.Table] = []
    stamps: set[datetime] = set()
    read = 0
    for path in files:
        source = pq.ParquetFile(path)
        cutoff = _cutoff(source.schema_arrow, path)
        if TIMESTAMP_COLUMN not in source.schema_arrow.names and cutoff is None:
            next(_stamped(source.schema_arrow.empty_table(), cutoff, path))  # raises
        for batch in source.iter_batches(batch_size=batch_rows):
            table = pa.Table.from_batches([batch])
            checked = contract.validate_batch(table)
            if checked.n_quarantined:
                quarantine.append(checked.quarantine)
                report.quarantined += checked.n_quarantined
            valid = table.take(pa.array(checked.rows, pa.int64()))
            for ts, rows in _stamped(valid, cutoff, path):
                written = store.write(rows.select([contract.id_column, *contract.names]), ts)
                report.rows += written
                report.skipped_newer += rows.num_rows - written
                stamps.add(ts)
            read += table.num_rows
            progress(read, total)
    report.seconds = round(time.perf_counter() - started, 3)
    report.features_at = sorted(s.isoformat() for s in stamps)
    if quarantine:
        out = (
            features.with_suffix(".quarantine.parquet")
            if features.is_file()
            else features / "_quarantine.parquet"
        )
        pq.write_table(pa.concat_tables(quarantine).cast(QUARANTINE_SCHEMA), out)
        report.quarantine_file = str(out)
    return report
