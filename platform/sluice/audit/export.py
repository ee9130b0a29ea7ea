"""A run's audit trail as Parquet: one row per candidate, drafts inlined."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from sluice.errors import NotFoundError
from sluice.store.db import connect
from sluice.store.trail import export_chunks, export_columns

CHUNK = 50_000
_ARROW: dict[type, pa.DataType] = {
    float: pa.float64(),
    int: pa.int64(),
    datetime: pa.timestamp("us", tz="UTC"),
    date: pa.date32(),
}


def export_run(run_id: str, out: Path, database_url: str) -> int:
    """Write the run's audit records (with draft and delivery state) to ``out``; rows."""
    engine = connect(database_url)
    schema = pa.schema([(name, _ARROW.get(t, pa.string())) for name, t in export_columns()])
    writer: pq.ParquetWriter | None = None
    rows = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        for chunk in export_chunks(engine, run_id, CHUNK):
            writer = writer or pq.ParquetWriter(out, schema)
            table = pa.Table.from_pylist(chunk, schema)
            writer.write_table(table)
            rows += table.num_rows
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise NotFoundError(f"--run: no audit records for run {run_id}", field="run")
    return rows
