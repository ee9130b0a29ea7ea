"""Entering a journey through the API: ``POST /v1/journeys/{journey_id}/entries``.

For journeys whose spec allows it (``entry.api: true``); a key whose ``events`` scope is
limited to brands enters only its brands' journeys (403 naming ``journey_id``). Each
entry is admitted or refused on its own (a missing entry key, a live instance, the
re-entry rule) and the answer says which; admitted ones are instances the orchestrator
advances.
"""

# No ``from __future__ import annotations``: FastAPI reads the route signatures.

from typing import Annotated, Any

from fastapi import FastAPI, Path
from pydantic import AwareDatetime, Field

from sluice.contracts._base import Contract, CustomerId
from sluice.contracts.feedback import PropertyValue
from sluice.errors import ConflictError, ForbiddenError
from sluice.settings import SluiceSettings


class JourneyEntry(Contract):
    customer_id: CustomerId
    properties: dict[str, PropertyValue] = Field(default_factory=dict, max_length=64)
    """Entry properties (the journey's entry keys among them)."""
    at: AwareDatetime | None = None
    """When the customer entered (default: now)."""


class JourneyEntries(Contract):
    entries: list[JourneyEntry] = Field(min_length=1, max_length=10_000)


class EntryOutcome(Contract):
    customer_id: str
    instance_id: str | None
    refused: str | None
    """Why not: ``missing_key:<name>``, ``live_instance``, ``reentry_once``,
    ``reentry_window`` or ``paused``."""


class EntriesResult(Contract):
    entered: int
    outcomes: list[EntryOutcome]


def add_journey_routes(
    api: FastAPI, events_key: Any, errors: dict[int | str, Any], settings: SluiceSettings
) -> None:
    from sluice.contracts.journey import JourneySpec
    from sluice.journeys.context import Profiles
    from sluice.journeys.entries import EntryRequest, enter_many
    from sluice.serve.events_routes import event_scope
    from sluice.store.db import connect
    from sluice.store.journeys import ACTIVE, Journeys

    clock, url = settings.clock, settings.effective_database_url

    def post_entries(
        journey_id: Annotated[str, Path(max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$")],
        body: JourneyEntries,
        key: events_key,
    ) -> EntriesResult:
        engine = connect(url)
        record = Journeys(engine, clock).get(journey_id)
        spec = JourneySpec.model_validate(record.spec)
        brands = event_scope(key).brands
        if brands is not None and spec.brand not in brands:
            raise ForbiddenError(
                f"journey_id: {journey_id} is not a journey of key {key.name!r}'s brands "
                f"({', '.join(sorted(brands))})",
                field="journey_id",
            )
        if not spec.entry.api:
            raise ConflictError(
                f"journey_id: {journey_id} is not entered through the API (entry.api)",
                field="journey_id",
            )
        now = clock.now()
        requests = [EntryRequest(e.customer_id, e.properties, e.at or now) for e in body.entries]
        if record.status != ACTIVE:
            result = {r.customer_id: "refused:paused" for r in requests}
        else:
            result = enter_many(engine, spec, requests, Profiles(spec.customers).zone, now)
        outcomes = [
            EntryOutcome(
                customer_id=c,
                instance_id=None if v.startswith("refused:") else v,
                refused=v.removeprefix("refused:") if v.startswith("refused:") else None,
            )
            for c, v in result.items()
        ]
        return EntriesResult(
            entered=sum(o.instance_id is not None for o in outcomes), outcomes=outcomes
        )

    api.post(
        "/v1/journeys/{journey_id}/entries",
        response_model=EntriesResult,
        responses=errors,
        summary="Enter customers into a journey (entry.api)",
    )(post_entries)
