"""What a key that posts events may name: its brands' runs and suppressions.

An API key's ``events`` scope may be limited to brands (``sluice keys create --brand``).
Such a key may post an event only when

* the event's brand (an unsubscribe token's brand too) is one of the key's brands;
* a suppressing event (unsubscribe, bounce, complaint) names a brand: a suppression
  for all brands needs the ``admin`` scope;
* the run it names, if any, is a run of a campaign (or a journey) of one of its brands;
  a run the database does not know is refused the same way, so a key learns nothing
  about other brands' runs.

Anything else refuses the whole batch with a ForbiddenError (403) naming the event's
field (``events.<index>.run_id``). A suppression for all brands needs ``admin`` from
every key; otherwise keys without brands, and ``admin`` keys, are not limited. Customer
events (the types journeys react to) carry no brand and no run: they are not limited
either.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sluice.contracts.feedback import SUPPRESSING, CustomerEvent, OutcomeEvent
from sluice.errors import ForbiddenError, NotFoundError
from sluice.store.db import Engine
from sluice.store.journeys import Journeys
from sluice.store.runs import Runs


@dataclass(frozen=True)
class EventScope:
    """The brands a key's events are limited to (None: every brand)."""

    key_name: str
    brands: frozenset[str] | None = None
    admin: bool = False
    """An ``admin`` key: not limited at all."""

    def check(
        self, engine: Engine, events: Iterable[tuple[int, OutcomeEvent | CustomerEvent]]
    ) -> None:
        """ForbiddenError for the first event (by its index in the request) that the key
        may not post; see the module docstring."""
        if self.admin:
            return
        names = ", ".join(sorted(self.brands)) if self.brands is not None else "any brand"
        known: dict[str, str | None] = {}
        for i, e in events:
            if isinstance(e, CustomerEvent):
                continue
            where = f"events.{i}"
            if e.brand is None and e.type in SUPPRESSING:
                raise ForbiddenError(
                    f"{where}.brand: a {e.type.value} without a brand suppresses every brand, "
                    f"which needs the 'admin' scope; key {self.key_name!r} may name {names}",
                    field=f"{where}.brand",
                )
            if self.brands is None:
                continue
            if e.brand is not None and e.brand not in self.brands:
                field = f"{where}.token" if e.token is not None else f"{where}.brand"
                raise ForbiddenError(
                    f"{field}: brand {e.brand!r} is not one of key {self.key_name!r}'s "
                    f"brands ({names})",
                    field=field,
                )
            if e.run_id is not None:
                if e.run_id not in known:
                    known[e.run_id] = brand_of_run(engine, e.run_id)
                if known[e.run_id] not in self.brands:
                    raise ForbiddenError(
                        f"{where}.run_id: not a run of a campaign of key {self.key_name!r}'s "
                        f"brands ({names})",
                        field=f"{where}.run_id",
                    )


def brand_of_run(engine: Engine, run_id: str) -> str | None:
    """The brand of the campaign a run belongs to: a campaign run's spec, or, for a
    journey step's run (``j.<journey>.<step>.<generation>``), the journey's; None for a
    run the database does not know."""
    record = Runs(engine).get(run_id)
    if record is not None:
        brand = record.spec.get("brand")
        return brand if isinstance(brand, str) else None
    return _journey_brand(engine, run_id)


def _journey_brand(engine: Engine, run_id: str) -> str | None:
    from sluice.contracts.journey import JourneySpec

    parts = run_id.split(".")
    if len(parts) < 4 or parts[0] != "j" or not parts[-1].isdigit():
        return None
    journeys = Journeys(engine)
    for cut in range(len(parts) - 2, 1, -1):  # journey and step ids may hold dots
        journey_id, step_id = ".".join(parts[1:cut]), ".".join(parts[cut:-1])
        try:
            spec = JourneySpec.model_validate(journeys.get(journey_id).spec)
        except NotFoundError:
            continue
        if spec.step_run_id(step_id, int(parts[-1])) == run_id and any(
            s.id == step_id for s in spec.steps
        ):
            return spec.brand
    return None
