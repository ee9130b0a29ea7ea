"""A run's audit trail as Parquet: one row per candidate, drafts inlined."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import select

from sluice.store.db import connect
from sluice.store.schema import audit, deliveries, drafts

CHUNK = 50_000


def _arrow_type(query: Any, name: str) -> pa.DataType:
    column = query.selected_columns[name]
    python = column.type.python_type
    if python is float:
        return pa.float64()
    if python is int:
        return pa.int64()
    if python is datetime:
        return pa.timestamp("us", tz="UTC")
    if python is date:
        return pa.date32()
    return pa.string()


def export_run(run_id: str, out: Path, database_url: str | None = None) -> int:
    """Write the run's audit records (with draft and delivery state) to ``out``; rows."""
    engine = connect(database_url)
    query = (
        select(
            *[c for c in audit.c if c.name != "created_at"],
            audit.c.created_at.label("recorded_at"),
            drafts.c.draft,
            deliveries.c.state.label("delivery_state"),
            deliveries.c.provider_message_id,
        )
        .select_from(
            audit.outerjoin(drafts, audit.c.draft_id == drafts.c.draft_id).outerjoin(
                deliveries, audit.c.idempotency_key == deliveries.c.idempotency_key
            )
        )
        .where(audit.c.run_id == run_id)
        .order_by(audit.c.customer_id)
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    writer: pq.ParquetWriter | None = None
    rows = 0
    try:
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True).execute(query)
            while chunk := result.fetchmany(CHUNK):
                if writer is None:
                    schema = pa.schema([(k, _arrow_type(query, k)) for k in chunk[0]._fields])
                    writer = pq.ParquetWriter(out, schema)
                table = pa.Table.from_pylist([dict(r._mapping) for r in chunk], writer.schema)
                writer.write_table(table)
                rows += table.num_rows
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        from sluice.errors import NotFoundError

        raise NotFoundError(f"--run: no audit records for run {run_id}", field="run")
    return rows
