"""Features by customer id, checked against the request's time and the contract's
freshness limit.

:meth:`OnlineFeatures.lookup` reads a whole batch of ids in one round trip and says per
id what a decision may use: the row and its feature timestamp, or why not. A row dated
after the request's time is never served (the online store keeps only the latest row, so
an earlier request cannot be answered from it); a row older than the contract's
``max_age_hours`` is stale: refused, or used and flagged when the caller allows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sluice.contracts.feature_contract import FeatureContract
from sluice.errors import (
    CustomerNotFoundError,
    FutureFeaturesError,
    SluiceError,
    StaleFeaturesError,
)
from sluice.online.config import OnlineStoreConfig
from sluice.online.store import OnlineStore


@dataclass(frozen=True)
class Fetched:
    """What the store holds for one id, as a decision at ``at`` may use it."""

    customer_id: str
    row: dict[str, Any] | None
    """The features (name -> value), None when refused or absent."""
    features_at: datetime | None
    """The row's feature timestamp."""
    stale: bool = False
    """Older than the contract's freshness limit (served only when allowed)."""
    error: SluiceError | None = None
    """Why the row cannot be used (404 absent, 409 stale or dated after ``at``)."""


@dataclass(frozen=True)
class Wanted:
    """One request's ids, its time and whether it accepts stale rows."""

    ids: tuple[str, ...]
    at: datetime
    allow_stale: bool = False


class OnlineFeatures:
    """One contract's features in one online store, looked up by customer id."""

    def __init__(self, config: OnlineStoreConfig, contract: FeatureContract) -> None:
        self.store = OnlineStore(config, contract)
        self.contract = contract
        self.max_age = timedelta(hours=contract.max_age_hours)

    @property
    def url(self) -> str:
        return self.store.url

    def lookup(self, ids: Sequence[str], at: datetime, allow_stale: bool = False) -> list[Fetched]:
        """Each id's row as of ``at`` (one round trip for all of them)."""
        return self.lookup_many([Wanted(tuple(ids), at, allow_stale)])[0]

    def lookup_many(self, wanted: Sequence[Wanted]) -> list[list[Fetched]]:
        """Several requests' ids, each with its own time, read in one round trip."""
        unique = list(dict.fromkeys(c for w in wanted for c in w.ids))
        rows, stamps = self.store.read(unique)
        read = {c: (row, ts) for c, row, ts in zip(unique, rows, stamps, strict=True)}
        return [[self._check(c, *read[c], w.at, w.allow_stale) for c in w.ids] for w in wanted]

    def _check(
        self,
        customer_id: str,
        row: dict[str, Any] | None,
        ts: datetime | None,
        at: datetime,
        allow_stale: bool,
    ) -> Fetched:
        field = self.contract.id_column
        if row is None or ts is None:
            error: SluiceError = CustomerNotFoundError(
                f"{field}: no online features for {customer_id!r} in {self.store.view.name}",
                field=field,
                customer_id=customer_id,
            )
            return Fetched(customer_id, None, None, error=error)
        if ts > at:
            error = FutureFeaturesError(
                f"{field}: the online features of {customer_id!r} are dated {ts.isoformat()}, "
                f"after the request's time {at.isoformat()}; the online store serves only "
                "its latest row",
                field="at",
                customer_id=customer_id,
                features_at=ts.isoformat(),
            )
            return Fetched(customer_id, None, ts, error=error)
        stale = at - ts > self.max_age
        if stale and not allow_stale:
            error = StaleFeaturesError(
                f"{field}: the online features of {customer_id!r} are dated {ts.isoformat()}, "
                f"older than {self.contract.key}'s limit of {self.contract.max_age_hours:g} h "
                f"at {at.isoformat()} (set allow_stale to use them)",
                field=field,
                customer_id=customer_id,
                features_at=ts.isoformat(),
            )
            return Fetched(customer_id, None, ts, stale=True, error=error)
        return Fetched(customer_id, row, ts, stale=stale)
