"""A run's audit trail read back: gated records with their drafts, and the export stream."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Engine, Select, and_, select

from sluice.store.schema import audit, deliveries, drafts

_IN_CHUNK = 500


def gated_records(engine: Engine, run_id: str) -> list[dict[str, Any]]:
    """The run's audit records that carry gate verdicts, as column -> value."""
    query = select(audit).where(and_(audit.c.run_id == run_id, audit.c.verdicts.is_not(None)))
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def draft_texts(engine: Engine, draft_ids: Sequence[str]) -> dict[str, str]:
    """Draft id -> the stored draft (JSON) for the ids that exist."""
    ids = sorted(set(draft_ids))
    found: dict[str, str] = {}
    with engine.connect() as conn:
        for i in range(0, len(ids), _IN_CHUNK):
            query = select(drafts.c.draft_id, drafts.c.draft).where(
                drafts.c.draft_id.in_(ids[i : i + _IN_CHUNK])
            )
            found.update({str(d): str(text) for d, text in conn.execute(query)})
    return found


def _export_query(run_id: str) -> Select[Any]:
    return (
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


def export_columns() -> list[tuple[str, type]]:
    """(name, Python type) of each column :func:`export_chunks` yields, in order."""
    query = _export_query("")
    return [(c.name, c.type.python_type) for c in query.selected_columns]


def export_chunks(engine: Engine, run_id: str, size: int) -> Iterator[list[dict[str, Any]]]:
    """The run's audit records joined with draft and delivery state, ``size`` at a time,
    streamed (the whole trail is never in memory)."""
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True).execute(_export_query(run_id))
        while chunk := result.fetchmany(size):
            yield [dict(r._mapping) for r in chunk]
