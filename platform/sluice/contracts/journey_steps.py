"""The parts of a journey spec: durations, property tests, entry, and the four kinds of
step (wait, branch, send, exit). :mod:`sluice.contracts.journey` puts them together."""

from __future__ import annotations

import re
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import BeforeValidator, Field, model_validator

from sluice.contracts._base import Contract, Slug
from sluice.contracts.customer import Channel

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(value: Any) -> Any:
    """``90s``, ``15m``, ``1h30m``, ``2d``, ``1w``, ISO 8601 (``P2D``) or a number of
    seconds, as a timedelta."""
    if isinstance(value, timedelta) or value is None:
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=float(value))
    if not isinstance(value, str):
        raise ValueError("a duration is a string such as 90s, 15m, 1h or 2d")
    text = value.strip().replace(" ", "")
    if text[:1] in ("P", "p"):
        return text  # ISO 8601 (P1DT2H), as a stored spec writes it
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{value!r} is not a duration (use s, m, h, d or w: 90s, 1h30m, 2d)")
    return timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in parts))


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Scalar = str | int | float | bool
PropertyName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z_][\w.]*$")]


class Condition(Contract):
    """One test of a property (of an event, or of the customer's profile)."""

    field: PropertyName
    op: Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "exists"] = "eq"
    value: Scalar | tuple[Scalar, ...] | None = None

    @model_validator(mode="after")
    def _value_fits(self) -> Self:
        if self.op == "exists":
            return self
        if self.value is None:
            raise ValueError(f"value: the {self.op} test needs a value")
        listed = isinstance(self.value, tuple)
        if self.op in ("in", "not_in") and not listed:
            raise ValueError(f"value: the {self.op} test takes a list")
        if self.op not in ("in", "not_in") and listed:
            raise ValueError(f"value: the {self.op} test takes one value, not a list")
        if self.op in ("gt", "gte", "lt", "lte") and isinstance(self.value, bool | str):
            raise ValueError(f"value: the {self.op} test compares numbers")
        return self


class EventMatch(Contract):
    """Events of one type whose properties pass ``where`` and, for waits, exits and
    branches, carry the same values as the entry for every name in ``match``."""

    type: Slug
    where: tuple[Condition, ...] = ()
    match: tuple[PropertyName, ...] = ()
    """Entry properties the event must repeat (``cart_id``: this cart, not any cart)."""


class Schedule(Contract):
    """Enter everyone in an audience file at a cron time."""

    cron: str = Field(min_length=9, max_length=120)
    """Five-field cron expression, in UTC (``0 9 * * 1``: Mondays at 09:00)."""
    audience: Path
    """Parquet file with ``customer_id`` (other columns become entry properties)."""
    missed: Literal["skip", "run_once"] = "run_once"
    """Times missed while the orchestrator was down: ``run_once`` enters the audience
    once for all of them when it is back; ``skip`` waits for the next time."""


class Entry(Contract):
    event: EventMatch | None = None
    schedule: Schedule | None = None
    api: bool = False
    """Entries through ``POST /v1/journeys/{journey_id}/entries``."""
    keys: tuple[PropertyName, ...] = ()
    """Entry properties every entry must carry (``cart_id``): an entry event without one
    is rejected; exits and waits match on them."""

    @model_validator(mode="after")
    def _some_way_in(self) -> Self:
        if self.event is None and self.schedule is None and not self.api:
            raise ValueError("entry: give an event, a schedule or api: true")
        return self


class ReentryAfter(Contract):
    after: Duration
    """A customer may enter again this long after their last entry."""


Reentry = Literal["once", "always"] | ReentryAfter


class Wait(Contract):
    for_: Duration | None = Field(default=None, alias="for")
    """A fixed time."""
    until: time | None = None
    """The next such local time of day in the recipient's time zone."""
    event: EventMatch | None = None
    """An event (matched against the entry); needs ``timeout``."""
    timeout: Duration | None = None
    on_event: Slug | None = None
    """Step after the event came (default: the next step)."""
    on_timeout: Slug | None = None
    """Step after the timeout (default: the next step)."""

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        given = [k for k in ("for_", "until", "event") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("wait: give exactly one of for, until or event")
        if self.event is not None and self.timeout is None:
            raise ValueError("timeout: a wait for an event needs a timeout")
        if self.event is None and (self.timeout or self.on_event or self.on_timeout):
            raise ValueError("timeout: only a wait for an event has a timeout and paths")
        return self

    @property
    def duration(self) -> timedelta | None:
        return self.for_


class ScoreTest(Contract):
    model: str = "sluice-propensity@champion"
    """Registered model by alias (``name@alias``), scored on the journey's features."""
    above: float = Field(ge=0, le=1)
    """The ``then`` path when the score is at least this."""


class SplitPath(Contract):
    pct: float = Field(gt=0, le=100)
    next: Slug


class Branch(Contract):
    event: EventMatch | None = None
    """Whether such an event happened since entry."""
    attribute: Condition | None = None
    """A test of the customer's profile (a column of ``customers``)."""
    score: ScoreTest | None = None
    split: tuple[SplitPath, ...] | None = None
    """A random split by percentage (salted hash of the instance): shares add up to 100."""
    then: Slug | None = None
    """Step when the test holds (default: the next step)."""
    else_: Slug | None = Field(default=None, alias="else")
    """Step when it does not (default: the next step)."""

    @model_validator(mode="after")
    def _one_test(self) -> Self:
        given = [k for k in ("event", "attribute", "score", "split") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("branch: give exactly one of event, attribute, score or split")
        if self.split is not None:
            if abs(sum(p.pct for p in self.split) - 100) > 1e-6:
                raise ValueError("split: the shares must add up to 100")
            if self.then or self.else_:
                raise ValueError("split: paths name their own next step (no then/else)")
        return self


class OfferRef(Contract):
    id: Slug | None = None
    """A catalog offer."""
    entry: PropertyName | None = None
    """The entry property holding the offer id."""

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.id is None) == (self.entry is None):
            raise ValueError("offer: give id or entry")
        return self


class Send(Contract):
    channel: Channel | Literal["best"] = "best"
    """A channel, or ``best``: the decision rules' channel for the customer."""
    offer: Literal["decision"] | OfferRef = "decision"
    """``decision``: the catalog's decision rules on the model's score; or a fixed offer."""


class ExitStep(Contract):
    reason: Slug = "done"


class Step(Contract):
    id: Slug
    wait: Wait | None = None
    branch: Branch | None = None
    send: Send | None = None
    exit: ExitStep | None = None
    next: Slug | None = None
    """Step after this one (default: the one below it; after the last, the journey ends)."""

    @model_validator(mode="after")
    def _one_action(self) -> Self:
        given = [k for k in ("wait", "branch", "send", "exit") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"step {self.id}: give exactly one of wait, branch, send or exit")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("wait", "branch", "send", "exit") if getattr(self, k) is not None)
