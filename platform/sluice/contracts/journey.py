"""The journey spec: an event-triggered, multi-step sequence that runs on its own.

A journey is entered on an event (``entry.event``), on a schedule (an audience file at a
cron time) or through the API; its steps wait, branch, send and exit; its exit criteria
end an instance at once (and withdraw the messages it has booked but not delivered).
Every ``send`` is handed to the delivery pipeline, so a journey's messages pass the same
gates, ledger, frequency cap, quiet hours, audit trail and review queue as a campaign's:
each send step is delivered as a run of the journey (:meth:`JourneySpec.step_run_id`).

Validated by :class:`JourneySpec` (pydantic, unknown fields refused); errors name the
file and the field (:func:`sluice.journeys.spec.load_journey`).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, Self

from pydantic import Field, model_validator

from sluice.contracts._base import Contract, Slug
from sluice.contracts.campaign import AudienceSpec, CampaignSpec, ChannelSpec, CopySpec, GatesSpec
from sluice.contracts.customer import Channel
from sluice.contracts.journey_steps import (
    Branch,
    Condition,
    Duration,
    Entry,
    EventMatch,
    OfferRef,
    Reentry,
    ReentryAfter,
    Schedule,
    ScoreTest,
    Send,
    Step,
    Wait,
    parse_duration,
)

__all__ = [
    "Branch",
    "Condition",
    "Duration",
    "Entry",
    "EventMatch",
    "JourneySpec",
    "OfferRef",
    "Reentry",
    "ReentryAfter",
    "Schedule",
    "ScoreTest",
    "Send",
    "Step",
    "Wait",
    "parse_duration",
]


class JourneySpec(Contract):
    """One journey."""

    journey_id: Slug
    name: str = Field(min_length=1, max_length=200)
    brand: Slug = "sluice-outdoors"
    customers: Path
    """Customer profiles (``customers.parquet``): consent, time zone, addresses, names,
    and the attributes branches test."""
    features: Path | None = None
    """Feature rows by customer for model scores (score branches and sends whose offer
    comes from the decision rules): a Parquet file (as ``sluice features build`` writes),
    or the online store's ``feature_store.yaml`` (as ``sluice features materialize``
    writes), looked up per batch as the decision service looks customers up by id."""
    model: str = "sluice-propensity@champion"
    """The model that scores customers for the decision rules."""
    offers: str = "builtin:default"
    channels: dict[Channel, ChannelSpec] = Field(min_length=1)
    copy_: CopySpec = Field(default_factory=CopySpec, alias="copy")
    gates: GatesSpec = GatesSpec()
    entry: Entry
    reentry: Reentry = "once"
    """``once``; ``always`` (one live instance at a time); or ``{after: 7d}``."""
    exit: tuple[EventMatch, ...] = ()
    """Events that end an instance at once (an unsubscribe always does)."""
    conversion: EventMatch | None = None
    """The event that counts as a conversion in the funnel (treated against holdout)."""
    holdout_pct: float = Field(default=10.0, ge=0, le=100)
    """Share of entries that go through every step without being sent anything."""
    salt: str | None = Field(default=None, min_length=1, max_length=64)
    review_hours: float = Field(default=72, gt=0, le=24 * 90)
    steps: tuple[Step, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        ids = [s.id for s in self.steps]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"steps: step ids must be unique, repeated: {dupes}")
        known = set(ids)
        for i, step in enumerate(self.steps):
            for target in self._targets(step):
                if target not in known:
                    raise ValueError(f"steps.{i}: step {step.id} leads to unknown step {target!r}")
            if step.send is not None:
                self._check_send(i, step.send)
            if step.branch is not None and step.branch.score and self.features is None:
                raise ValueError(f"steps.{i}.branch.score: a score needs the journey's features")
            for match in self._matches(step):
                missing = [k for k in match.match if k not in self.entry.keys]
                if missing:
                    raise ValueError(
                        f"steps.{i}: match names {missing}, which are not entry.keys "
                        f"{list(self.entry.keys)}"
                    )
        for j, e in enumerate(self.exit):
            missing = [k for k in e.match if k not in self.entry.keys]
            if missing:
                raise ValueError(f"exit.{j}.match: {missing} are not entry.keys")
        self._no_loop_without_wait()
        return self

    def _check_send(self, i: int, send: Send) -> None:
        if send.channel != "best" and Channel(send.channel) not in self.channels:
            raise ValueError(f"steps.{i}.send.channel: {send.channel} is not in channels")
        if send.offer == "decision" and self.features is None:
            raise ValueError(
                f"steps.{i}.send.offer: the decision rules need the journey's features "
                "(or name the offer: {id: ...} or {entry: property})"
            )
        if send.channel == "best" and self.features is None:
            raise ValueError(f"steps.{i}.send.channel: best needs the journey's features")

    @staticmethod
    def _matches(step: Step) -> list[EventMatch]:
        found = []
        if step.wait and step.wait.event:
            found.append(step.wait.event)
        if step.branch and step.branch.event:
            found.append(step.branch.event)
        return found

    def _targets(self, step: Step) -> list[str]:
        """Steps this one may lead to (named ones; the default next is implied)."""
        out = [step.next] if step.next else []
        if step.wait:
            out += [t for t in (step.wait.on_event, step.wait.on_timeout) if t]
        if step.branch:
            out += [t for t in (step.branch.then, step.branch.else_) if t]
            out += [p.next for p in step.branch.split or ()]
        return out

    def following(self, step_id: str) -> str | None:
        """The step below ``step_id`` (None after the last)."""
        ids = [s.id for s in self.steps]
        i = ids.index(step_id)
        return ids[i + 1] if i + 1 < len(ids) else None

    def successors(self, step: Step) -> set[str]:
        if step.exit is not None:
            return set()
        default = step.next or self.following(step.id)
        out = set(self._targets(step))
        if step.branch and step.branch.split:
            return out
        if default:
            out.add(default)
        return out

    def _no_loop_without_wait(self) -> None:
        steps = {s.id: s for s in self.steps}
        # Depth-first over steps that are not waits: a cycle among them would spin.
        state: dict[str, int] = {}

        def visit(sid: str) -> None:
            state[sid] = 1
            for nxt in self.successors(steps[sid]):
                if steps[nxt].wait is not None:
                    continue
                if state.get(nxt) == 1:
                    raise ValueError(f"steps: {nxt} loops back to itself without a wait")
                if nxt not in state:
                    visit(nxt)
            state[sid] = 2

        for sid, step in steps.items():
            if sid not in state and step.wait is None:
                visit(sid)

    @cached_property
    def _by_id(self) -> dict[str, Step]:
        return {s.id: s for s in self.steps}

    def step(self, step_id: str) -> Step:
        return self._by_id[step_id]

    @property
    def arm_salt(self) -> str:
        return self.salt or self.journey_id

    def event_types(self) -> set[str]:
        """Every event type this journey reacts to."""
        types = {e.type for e in self.exit}
        if self.entry.event:
            types.add(self.entry.event.type)
        if self.conversion:
            types.add(self.conversion.type)
        for step in self.steps:
            types.update(m.type for m in self._matches(step))
        return types

    def step_run_id(self, step_id: str, generation: int) -> str:
        """The run a send step's messages are delivered under: one per step and per
        entry generation (a customer's first entry is generation 0), so a customer's
        message of a step is booked once per entry, exactly once."""
        return f"j.{self.journey_id}.{step_id}.{generation}"

    def delivery_spec(self) -> CampaignSpec:
        """The journey as the delivery pipeline sees a campaign: its brand, channels,
        copy, gates and offers (arms are the journey's; the pipeline holds none out)."""
        return CampaignSpec.model_validate(
            {
                "campaign_id": self.journey_id,
                "name": self.name,
                "brand": self.brand,
                "audience": AudienceSpec(
                    features=self.features or self.customers, customers=self.customers
                ),
                "model": self.model,
                "offers": self.offers,
                "channels": self.channels,
                "copy": self.copy_,
                "gates": self.gates,
                "holdout_pct": 0,
                "salt": self.salt,
                "review_hours": self.review_hours,
            }
        )

    def public(self) -> dict[str, Any]:
        """The spec as stored when deployed."""
        return self.model_dump(mode="json", by_alias=True)
