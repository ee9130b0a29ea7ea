"""Tests of properties: conditions on an event or a profile, events matched to an entry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sluice.contracts.journey import Condition, EventMatch


def holds(cond: Condition, props: Mapping[str, Any]) -> bool:
    """Whether ``props`` pass ``cond`` (a missing property passes only ``ne``/``not_in``)."""
    present = cond.field in props and props[cond.field] is not None
    if cond.op == "exists":
        return present
    if not present:
        return cond.op in ("ne", "not_in")
    value = props[cond.field]
    want = cond.value
    if cond.op == "eq":
        return bool(value == want)
    if cond.op == "ne":
        return bool(value != want)
    if cond.op in ("in", "not_in"):
        inside = value in (want if isinstance(want, tuple) else ())
        return inside if cond.op == "in" else not inside
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    assert isinstance(want, int | float)
    return {
        "gt": value > want,
        "gte": value >= want,
        "lt": value < want,
        "lte": value <= want,
    }[cond.op]


def matches(
    m: EventMatch, etype: str, props: Mapping[str, Any], entry: Mapping[str, Any] | None = None
) -> bool:
    """Whether an event of ``etype`` with ``props`` is one ``m`` describes; with an
    ``entry``, its ``match`` properties must carry the entry's values."""
    if etype != m.type or not all(holds(c, props) for c in m.where):
        return False
    if entry is None:
        return True
    return all(k in props and k in entry and props[k] == entry[k] for k in m.match)
