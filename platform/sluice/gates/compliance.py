"""Compliance gates: schema, consent, suppression, quiet hours, frequency cap."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from sluice.contracts.campaign import HEADER_UNSAFE
from sluice.gates.base import DEFER, FAIL, NO_TIME, GateContext, MessageBatch, Verdicts

# Matched whole (fullmatch): ``$`` would also match before a trailing newline.
_EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+")
_PHONE = re.compile(r"\+[1-9][0-9]{6,14}")
REQUIRED_COPY = {"email": ("subject", "body", "cta"), "sms": ("text",), "push": ("text",)}
ADDRESS = {"email": "email", "sms": "phone", "push": "customer_id"}
HEADER_FIELDS = {"email": ("subject", "preheader", "customer_id")}
"""Fields an email carries in its headers besides the address (the first name, where the
copy uses it, is already filled into the subject)."""
_LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


def control_character(value: object) -> str | None:
    """What is wrong with ``value`` as a header value: "a line break", "a control
    character (U+0007)"; None when it has neither."""
    found = HEADER_UNSAFE.search(value) if isinstance(value, str) else None
    if found is None:
        return None
    c = found.group()
    return "a line break" if c in _LINE_BREAKS else f"a control character (U+{ord(c):04X})"


class SchemaGate:
    """The message contract: a known channel, a valid address for it, the copy it needs,
    and no line break or other control character in a value headers carry."""

    name = "schema"

    def __init__(self, channels: set[str]) -> None:
        self.channels = channels

    def evaluate(self, batch: MessageBatch, ctx: GateContext) -> Verdicts:
        v = Verdicts.passing(self.name, len(batch))
        channel = batch.col("channel")
        known = np.isin(channel, list(self.channels))
        v.set(~known, FAIL, "unknown_channel", "channel not configured for this campaign")
        if batch.has("time_zone"):
            zones = batch.col("time_zone")
            for zone in set(zones.tolist()):
                if not known_zone(zone):
                    rows = (zones == zone) & (v.outcome == 0)
                    v.set(
                        rows, FAIL, "invalid_time_zone", f"time_zone {zone!r} is not an IANA zone"
                    )
        for ch, field in ADDRESS.items():
            rows = known & (channel == ch)
            if not rows.any():
                continue
            address = batch.col(field)
            missing = rows & np.array([a is None or a == "" for a in address])
            v.set(missing & (v.outcome == 0), FAIL, "missing_address", f"no {field} for {ch}")
            for name in (field, *HEADER_FIELDS.get(ch, ())):
                self._control_characters(batch, rows, name, v)
            pattern = _EMAIL if ch == "email" else _PHONE if ch == "sms" else None
            if pattern is not None:
                bad = (
                    rows
                    & ~missing
                    & np.array([a is not None and not pattern.fullmatch(str(a)) for a in address])
                )
                v.set(
                    bad & (v.outcome == 0),
                    FAIL,
                    "invalid_address",
                    f"{field} is not a valid address",
                )
            for part in REQUIRED_COPY[ch]:
                values = batch.col(part)
                empty = rows & np.array([x is None or not str(x).strip() for x in values])
                v.set(empty & (v.outcome == 0), FAIL, "missing_copy", f"{ch} copy lacks {part}")
        return v

    @staticmethod
    def _control_characters(batch: MessageBatch, rows: np.ndarray, name: str, v: Verdicts) -> None:
        """Fails the ``rows`` whose header-bound field ``name`` holds a line break or
        another control character: it would break the header, or start another one."""
        if not batch.has(name):
            return
        values = batch.col(name)
        found = {x: control_character(x) for x in set(values[rows].tolist())}
        for problem in set(found.values()) - {None}:
            hit = rows & np.array([found.get(x) == problem for x in values])
            v.set(
                hit & (v.outcome == 0),
                FAIL,
                "header_control_character",
                f"{name} contains {problem}",
            )


class ConsentGate:
    """Consent per channel: granted passes; withdrawn or no record fails."""

    name = "consent"

    def evaluate(self, batch: MessageBatch, ctx: GateContext) -> Verdicts:
        v = Verdicts.passing(self.name, len(batch))
        channel = batch.col("channel")
        for ch in ("email", "sms", "push"):
            rows = channel == ch
            if not rows.any():
                continue
            _, withdrawn_state, absent_state = batch.states(f"consent_{ch}")
            withdrawn = rows & withdrawn_state
            absent = rows & absent_state
            v.set(withdrawn, FAIL, "consent_withdrawn", f"{ch} consent withdrawn")
            v.set(absent, FAIL, "no_consent_record", f"no {ch} consent on record")
        return v


class SuppressionGate:
    """Unsubscribed, bounced or complained: global entries and the campaign brand's."""

    name = "suppression"

    def evaluate(self, batch: MessageBatch, ctx: GateContext) -> Verdicts:
        v = Verdicts.passing(self.name, len(batch))
        store = ctx.services["suppressions"]
        ids = batch.col("customer_id")
        entries = store.lookup(list(dict.fromkeys(ids.tolist())), ctx.brand)
        if not entries:
            return v
        channel = batch.col("channel")
        for i, cid in enumerate(ids):
            hit = next((e for e in entries.get(cid, ()) if e.channel in ("*", channel[i])), None)
            if hit is not None:
                scope = "all brands" if hit.brand == "*" else hit.brand
                v.outcome[i], v.reason[i], v.detail[i] = (
                    FAIL,
                    hit.reason,
                    f"suppressed ({hit.reason}, {scope}, {hit.channel})",
                )
        return v


@lru_cache(maxsize=1024)
def known_zone(zone: object) -> bool:
    """Whether ``zone`` names a time zone the IANA database knows."""
    if not isinstance(zone, str) or not zone:
        return False
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def local_now(now: datetime, zone: str) -> datetime:
    return now.astimezone(ZoneInfo(zone))


def window_end(local: datetime, start: time, end: time) -> datetime | None:
    """If ``local`` falls in the quiet window ``[start, end)``, when the window ends (UTC)."""
    t = local.timetz().replace(tzinfo=None)
    crosses = start > end
    inside = (t >= start or t < end) if crosses else (start <= t < end)
    if not inside:
        return None
    day = local.date() + timedelta(days=1) if crosses and t >= start else local.date()
    ends = datetime.combine(day, end, tzinfo=local.tzinfo)
    return ends.astimezone(UTC)


@dataclass
class QuietHoursGate:
    """Recipient-local quiet hours: a send inside the window is deferred to its end."""

    start: time
    end: time
    name: str = "quiet_hours"

    def evaluate(self, batch: MessageBatch, ctx: GateContext) -> Verdicts:
        v = Verdicts.passing(self.name, len(batch))
        zones = batch.col("time_zone")
        for zone in set(zones.tolist()):
            ends = window_end(local_now(ctx.now, zone), self.start, self.end)
            if ends is None:
                continue
            rows = zones == zone
            v.set(
                rows,
                DEFER,
                "quiet_hours",
                f"quiet hours {self.start:%H:%M}-{self.end:%H:%M} in {zone}",
            )
            v.defer_until[rows] = int(ends.timestamp() * 1e6)
        return v


def send_day(now: datetime, zone: str, defer_until_us: int | None) -> datetime:
    when = datetime.fromtimestamp(defer_until_us / 1e6, UTC) if defer_until_us else now
    return when.astimezone(ZoneInfo(zone))


@dataclass
class FrequencyCapGate:
    """At most ``per_day`` messages per recipient-local calendar day, across campaigns.

    This read-only check fails recipients already at the cap; the binding check happens
    again when the send is reserved, in the same transaction (see the ledger).
    """

    per_day: int
    name: str = "frequency_cap"

    def evaluate(self, batch: MessageBatch, ctx: GateContext) -> Verdicts:
        v = Verdicts.passing(self.name, len(batch))
        ledger = ctx.services["ledger"]
        ids, zones = batch.col("customer_id"), batch.col("time_zone")
        # The day the message will actually go out: a deferred send counts tomorrow's.
        deferred = batch.defer_until
        if deferred is None:
            deferred = np.full(len(batch), NO_TIME, np.int64)
        days: dict[tuple[str, int], date] = {}
        keys = []
        for cid, zone, until in zip(ids, zones, deferred.tolist(), strict=True):
            day = days.get((zone, until))
            if day is None:
                day = send_day(ctx.now, zone, None if until == NO_TIME else until).date()
                days[(zone, until)] = day
            keys.append((str(cid), day))
        counts = ledger.contacts_many(keys)
        for i, key in enumerate(keys):
            n = counts.get(key, 0)
            if n >= self.per_day:
                v.outcome[i], v.reason[i], v.detail[i] = (
                    FAIL,
                    "frequency_cap",
                    f"{n} of {self.per_day} messages already on {key[1]}",
                )
            elif ctx.dry_run:
                counts[key] = n + 1  # a dry run counts what it would send
        return v
