"""The send-time re-check: what may have changed between gating and sending.

A message gated now may go out much later: deferred past quiet hours, approved by a
person days after, delivered by a resumed run. Just before a row is claimed the deliverer
asks :meth:`SendRules.check`, in the recipient's own time zone, at the time on Sluice's
clock:

- the offer has ended (recipient-local date after its last day): **expire**, never send;
- the recipient is in quiet hours: **defer** again, to the end of the window;
- the message now goes out on another day than it was counted on: **move** its count to
  that day, within the cap (every campaign counts there, capped or not); a full day
  fails it as ``frequency_cap``.

Suppressions, consent withdrawals and paused arms are re-checked by the claim itself,
in the same statement (see :meth:`sluice.store.ledger.Ledger.claim`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from sluice.contracts.campaign import CampaignSpec
from sluice.contracts.decisions import OfferCatalog
from sluice.gates.compliance import known_zone, window_end
from sluice.store.ledger import DeliveryRow


@dataclass(frozen=True)
class SendCheck:
    action: str
    """``go``, ``expire``, ``defer`` or ``move``."""
    day: date | None = None
    """The recipient-local day the message will count on (``defer``, ``move``)."""
    until: datetime | None = None
    """When a deferred message is due again (UTC)."""
    reason: str = ""


GO = SendCheck("go")


@dataclass(frozen=True)
class SendRules:
    quiet: tuple[time, time] | None = None
    cap: int | None = None
    offer_ends: dict[str, date] = field(default_factory=dict)

    @classmethod
    def of(cls, spec: CampaignSpec, catalog: OfferCatalog) -> SendRules:
        q, c = spec.gates.quiet_hours, spec.gates.frequency_cap
        return cls(
            quiet=(q.start, q.end) if q else None,
            cap=c.per_day if c else None,
            offer_ends={o.offer_id: o.valid_until for o in catalog.offers},
        )

    def check(self, row: DeliveryRow, now: datetime) -> SendCheck:
        zone = row.time_zone if known_zone(row.time_zone) else "UTC"
        local = now.astimezone(ZoneInfo(zone))
        ends = self.offer_ends.get(row.offer_id or "")
        if ends is not None and local.date() > ends:
            return SendCheck("expire", reason=f"offer {row.offer_id} ended on {ends}")
        if self.quiet is not None:
            until = window_end(local, *self.quiet)
            if until is not None:
                day = until.astimezone(ZoneInfo(zone)).date()
                return SendCheck("defer", day, until, f"quiet hours in {zone}")
        if row.local_day is not None and local.date() != row.local_day:
            return SendCheck("move", local.date(), reason=f"sent on {local.date()}")
        return GO
