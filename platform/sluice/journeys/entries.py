"""Entering a journey: the keys an entry must carry, re-entry, holdout, first step.

An entry is refused (with its reason) when the journey is paused, a required entry key
is missing, the customer has a live instance of the journey, or the re-entry rule says
not yet (``once``: never again; ``after``: not within the window). An admitted entry
becomes an instance with a deterministic id (journey, customer, entry generation), so
an entry applied twice is one instance.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sluice.contracts.journey import JourneySpec, ReentryAfter
from sluice.hashing import unit_hash
from sluice.journeys.steps import due_on_arrival
from sluice.store.db import Engine
from sluice.store.instances import NewInstance, insert_instances, members


@dataclass(frozen=True)
class EntryRequest:
    customer_id: str
    properties: Mapping[str, Any]
    at: datetime
    event_id: str | None = None


@dataclass
class Member:
    """A customer's standing in one journey, kept current while a batch is applied."""

    entries: int
    last_entered_at: datetime | None
    live: bool


def instance_id(journey_id: str, customer_id: str, generation: int) -> str:
    text = f"{journey_id}\x1f{customer_id}\x1f{generation}"
    return "ji_" + hashlib.sha256(text.encode()).hexdigest()[:32]


def in_holdout(spec: JourneySpec, customer_id: str) -> bool:
    if spec.holdout_pct <= 0:
        return False
    return bool(unit_hash([customer_id], f"{spec.arm_salt}:holdout")[0] < spec.holdout_pct / 100)


def holdouts(spec: JourneySpec, customer_ids: Sequence[str]) -> dict[str, bool]:
    """:func:`in_holdout` of many customers, hashed in one call."""
    ids = list(dict.fromkeys(customer_ids))
    if spec.holdout_pct <= 0:
        return dict.fromkeys(ids, False)
    inside = unit_hash(ids, f"{spec.arm_salt}:holdout") < spec.holdout_pct / 100
    return {c: bool(h) for c, h in zip(ids, inside.tolist(), strict=True)}


def refusal(spec: JourneySpec, req: EntryRequest, member: Member | None) -> str | None:
    """Why ``req`` may not enter (None: it may)."""
    missing = [k for k in spec.entry.keys if req.properties.get(k) in (None, "")]
    if missing:
        return f"missing_key:{missing[0]}"
    if member is None or member.entries == 0:
        return None
    if member.live:
        return "live_instance"
    if spec.reentry == "once":
        return "reentry_once"
    last = member.last_entered_at
    if isinstance(spec.reentry, ReentryAfter) and last and req.at < last + spec.reentry.after:
        return "reentry_window"
    return None


def admit(
    spec: JourneySpec,
    req: EntryRequest,
    member: Member | None,
    zone: str,
    holdout: bool | None = None,
) -> tuple[NewInstance | None, str | None]:
    """The new instance for ``req``, or the reason it was refused (``holdout``: the
    customer's :func:`in_holdout`, when the caller hashed a batch at once)."""
    why = refusal(spec, req, member)
    if why is not None:
        return None, why
    generation = member.entries if member else 0
    first = spec.steps[0].id
    entry = dict(req.properties)
    return (
        NewInstance(
            instance_id(spec.journey_id, req.customer_id, generation),
            spec.journey_id,
            req.customer_id,
            generation,
            in_holdout(spec, req.customer_id) if holdout is None else holdout,
            entry,
            req.event_id,
            req.at,
            first,
            due_on_arrival(spec, first, req.at, zone),
        ),
        None,
    )


def enter_many(
    engine: Engine,
    spec: JourneySpec,
    requests: Sequence[EntryRequest],
    zone: Callable[[str], str],
    now: datetime,
) -> dict[str, str]:
    """Admit entries in one transaction; per customer, the instance id or ``refused:<why>``."""
    result: dict[str, str] = {}
    with engine.begin() as conn:
        found = members(conn, spec.journey_id, [r.customer_id for r in requests])
        standing = {
            c: Member(int(r.entries), r.last_entered_at, r.live_instance is not None)
            for c, r in found.items()
        }
        held = holdouts(spec, [r.customer_id for r in requests])
        new = []
        for req in requests:
            c = req.customer_id
            made, why = admit(spec, req, standing.get(c), zone(c), held[c])
            if made is None:
                result[req.customer_id] = f"refused:{why}"
                continue
            new.append(made)
            standing[req.customer_id] = Member(made.generation + 1, made.entered_at, True)
            result[req.customer_id] = made.instance_id
        insert_instances(conn, new, now)
    return result
