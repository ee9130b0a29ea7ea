"""The one clock Sluice reads business time from.

Every decision that depends on the time (the default decision date, offer validity,
quiet hours, the frequency cap's day, review windows, claim stamps, deferrals) asks a
:class:`Clock` handed down from the edge (the CLI, an app builder, a job entrypoint),
never ``datetime.now()`` directly. The clock is a small, serialisable value: it travels
to Ray actors and Serve replicas as an argument, so every process of a run agrees on
what time it is.

A clock is the system clock plus a fixed ``offset``. The offset lets an operator rehearse
a campaign at another date, and lets tests run the same paths years ahead or just after
an offer ends; with no offset it is the system clock. Wire-protocol stamps that a peer
checks against its own clock (a webhook signature's timestamp, an email's ``Date``
header) stay on the system clock.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from pydantic import PrivateAttr

from sluice.contracts._base import Contract


class Clock(Contract):
    """The system clock, moved by ``offset``."""

    offset: timedelta = timedelta(0)
    """Added to the system time (negative: the past)."""

    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        return datetime.now(UTC) + self.offset

    def today(self) -> date:
        """The current UTC calendar day."""
        return self.now().date()

    @classmethod
    def at(cls, when: datetime) -> Clock:
        """A clock that reads ``when`` now and runs on from there."""
        if when.tzinfo is None:
            raise ValueError("when: a clock needs a timezone-aware time")
        return cls(offset=when - datetime.now(UTC))


SYSTEM_CLOCK = Clock()
"""The system clock itself (no offset)."""


class ManualClock(Clock):
    """A clock that reads the time it was last set to: a backtest's virtual clock
    (``sluice journey simulate``), moved forward as recorded events are replayed."""

    _at: datetime = PrivateAttr(default_factory=lambda: datetime.now(UTC))

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        """Move the clock to ``at`` (aware)."""
        self._at = at.astimezone(UTC)
