"""Reading the delivery ledger: rows still to deliver, states and counts, contacts per day.

:class:`sluice.store.ledger.Ledger` adds the writes on top of these reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date

from sqlalchemy import Engine, and_, func, select

from sluice.contracts.clock import SYSTEM_CLOCK, Clock
from sluice.store.reservations import RESERVED, DeliveryRow, row_of, states_in
from sluice.store.schema import contact_counts, deliveries


class LedgerReads:
    def __init__(self, engine: Engine, clock: Clock = SYSTEM_CLOCK) -> None:
        self.engine = engine
        self.clock = clock

    def states(self, keys: Sequence[str]) -> dict[str, str]:
        with self.engine.connect() as conn:
            return states_in(conn, keys)

    def pending(self, run_id: str, keys: Iterable[str] | None = None) -> list[DeliveryRow]:
        """Reserved rows of the run (optionally only ``keys``): unsent or ambiguous."""
        query = select(deliveries).where(
            and_(deliveries.c.run_id == run_id, deliveries.c.state == RESERVED)
        )
        if keys is not None:
            wanted = list(keys)
            if not wanted:
                return []
            query = query.where(deliveries.c.idempotency_key.in_(wanted))
        with self.engine.connect() as conn:
            return [row_of(r) for r in conn.execute(query.order_by(deliveries.c.idempotency_key))]

    def counts(self, run_id: str) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(deliveries.c.state, func.count())
                .where(deliveries.c.run_id == run_id)
                .group_by(deliveries.c.state)
            )
            return {state: int(n) for state, n in rows}

    def rows(self, run_id: str) -> list[DeliveryRow]:
        with self.engine.connect() as conn:
            return [
                row_of(r)
                for r in conn.execute(select(deliveries).where(deliveries.c.run_id == run_id))
            ]

    def contacts_many(self, keys: Sequence[tuple[str, date]]) -> dict[tuple[str, date], int]:
        """Messages counted per (customer, local day), for many keys in few queries."""
        wanted = set(keys)
        found: dict[tuple[str, date], int] = {}
        customers = sorted({k[0] for k in wanted})
        days = sorted({k[1] for k in wanted})
        with self.engine.connect() as conn:
            for i in range(0, len(customers), 500):
                chunk = customers[i : i + 500]
                rows = conn.execute(
                    select(
                        contact_counts.c.customer_id, contact_counts.c.local_day, contact_counts.c.n
                    ).where(
                        and_(
                            contact_counts.c.customer_id.in_(chunk),
                            contact_counts.c.local_day.in_(days),
                        )
                    )
                )
                for cid, day, n in rows:
                    if (cid, day) in wanted:
                        found[(cid, day)] = int(n)
        return found

    def contacts(self, customer_id: str) -> dict[date, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(contact_counts.c.local_day, contact_counts.c.n).where(
                    contact_counts.c.customer_id == customer_id
                )
            )
            return {d: int(n) for d, n in rows}

    def messaged(self, customer_ids: Sequence[str]) -> set[str]:
        """Those of ``customer_ids`` with any message booked in the ledger."""
        found: set[str] = set()
        ids = list(customer_ids)
        with self.engine.connect() as conn:
            for i in range(0, len(ids), 500):
                rows = conn.execute(
                    select(deliveries.c.customer_id)
                    .where(deliveries.c.customer_id.in_(ids[i : i + 500]))
                    .distinct()
                )
                found.update(str(r[0]) for r in rows)
        return found
