"""The suppression list: unsubscribed, bounced or complained, globally or per brand.

An entry names a customer, a channel (or ``*`` for all) and a brand (or ``*`` for all
brands). Entries are written by outcome events the moment they arrive and read per
batch by the suppression gate, so a send later in the same minute is already blocked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, and_, delete, or_, select

from sluice.contracts.clock import SYSTEM_CLOCK, Clock
from sluice.store.schema import suppressions

ANY = "*"
REASONS = ("unsubscribed", "bounced", "complained", "manual")


@dataclass(frozen=True)
class Suppression:
    customer_id: str
    channel: str
    brand: str
    reason: str


class Suppressions:
    def __init__(self, engine: Engine, clock: Clock = SYSTEM_CLOCK) -> None:
        self.engine = engine
        self.clock = clock

    def add(
        self,
        customer_id: str,
        reason: str,
        channel: str = ANY,
        brand: str = ANY,
        source: str = "manual",
    ) -> bool:
        """Record a suppression; False if the same one exists already."""
        if reason not in REASONS:
            raise ValueError(f"reason: must be one of {REASONS}")
        with self.engine.begin() as conn:
            exists = conn.execute(
                select(suppressions.c.id).where(
                    and_(
                        suppressions.c.customer_id == customer_id,
                        suppressions.c.channel == channel,
                        suppressions.c.brand == brand,
                        suppressions.c.reason == reason,
                    )
                )
            ).first()
            if exists:
                return False
            conn.execute(
                suppressions.insert().values(
                    customer_id=customer_id,
                    channel=channel,
                    brand=brand,
                    reason=reason,
                    source=source,
                    created_at=self.clock.now(),
                )
            )
            return True

    def remove(self, customer_id: str, reason: str, channel: str = ANY, brand: str = ANY) -> int:
        with self.engine.begin() as conn:
            done = conn.execute(
                delete(suppressions).where(
                    and_(
                        suppressions.c.customer_id == customer_id,
                        suppressions.c.channel == channel,
                        suppressions.c.brand == brand,
                        suppressions.c.reason == reason,
                    )
                )
            )
            return int(done.rowcount or 0)

    def lookup(self, customer_ids: Sequence[str], brand: str) -> dict[str, list[Suppression]]:
        """Entries that apply to ``brand`` (its own and global ones) for the given customers."""
        found: dict[str, list[Suppression]] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(customer_ids), 500):
                chunk = list(customer_ids[i : i + 500])
                rows = conn.execute(
                    select(
                        suppressions.c.customer_id,
                        suppressions.c.channel,
                        suppressions.c.brand,
                        suppressions.c.reason,
                    ).where(
                        and_(
                            suppressions.c.customer_id.in_(chunk),
                            or_(suppressions.c.brand == brand, suppressions.c.brand == ANY),
                        )
                    )
                )
                for cid, ch, br, reason in rows:
                    found.setdefault(cid, []).append(Suppression(cid, ch, br, reason))
        return found
