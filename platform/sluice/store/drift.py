"""Drift per run and model version (``run_drift``): written per run, read by approval."""

from __future__ import annotations

from sqlalchemy import Engine, delete, select

from sluice.contracts.feedback import DriftRow
from sluice.store.schema import run_drift


def store_drift(engine: Engine, run_id: str, version: str, rows: list[DriftRow]) -> None:
    with engine.begin() as conn:
        conn.execute(
            delete(run_drift).where(
                (run_drift.c.run_id == run_id) & (run_drift.c.model_version == version)
            )
        )
        if rows:
            conn.execute(
                run_drift.insert(),
                [
                    {
                        "run_id": run_id,
                        "model_version": version,
                        "variable": r.variable,
                        "psi": r.psi,
                        "level": r.level,
                    }
                    for r in rows
                ],
            )


def stored_drift(
    engine: Engine, run_id: str | None = None, version: str | None = None
) -> list[tuple[str, str, DriftRow]]:
    """(run id, model version, row) of stored drift, optionally for one run or version."""
    query = select(run_drift)
    if run_id is not None:
        query = query.where(run_drift.c.run_id == run_id)
    if version is not None:
        query = query.where(run_drift.c.model_version == version)
    with engine.connect() as conn:
        return [
            (r.run_id, r.model_version, DriftRow(variable=r.variable, psi=r.psi, level=r.level))
            for r in conn.execute(query.order_by(run_drift.c.run_id, run_drift.c.variable))
        ]
