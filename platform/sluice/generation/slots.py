"""Filling declared slots (``{first_name}``, ``{entry.cart_value}``) after generation,
with escaping, and the offer's fact slots (``{price}``...) once a draft is generated.

Fact slots (:data:`sluice.contracts.offers.FACT_SLOTS`) are filled per draft by
:func:`fill_facts`, with the offer's own values written for the draft's locale: the only
way a price, percentage, date or link enters generated copy.

Only declared slots are filled: those in :data:`sluice.contracts.briefs.SLOTS`, and in
a journey's messages ``{entry.<property>}``, a property of the event that entered the
customer (a journey's entry properties stay available to its copy). A value is cleaned
before it goes in: control characters and braces are removed (so a value can never
open another slot), white space is collapsed and the length is bounded; an absent
first name becomes the channel's neutral greeting word, while an entry slot without a
value stays as written, and the template-integrity gate fails the message. Anything
else in braces stays as it is, for that gate to catch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from sluice.contracts.briefs import SLOTS
from sluice.contracts.drafts import MessageDraft
from sluice.contracts.offers import FACT_SLOTS

ENTRY_PREFIX = "entry."
_SLOT = re.compile(
    r"\{(" + "|".join(map(re.escape, SLOTS)) + r"|entry\.[A-Za-z_][A-Za-z0-9_]{0,63})\}"
)
_FACT = re.compile(r"\{(" + "|".join(FACT_SLOTS) + r")\}")
_UNSAFE = re.compile(r"[\x00-\x1f\x7f{}<>]")
NEUTRAL = {"first_name": "there"}
MAX_VALUE = 50


def clean(value: str | None, slot: str) -> str:
    text = " ".join(_UNSAFE.sub("", value or "").split())[:MAX_VALUE]
    return text or NEUTRAL.get(slot, "")


def fill(text: str | None, values: Mapping[str, str | None]) -> str | None:
    if text is None:
        return None
    return _SLOT.sub(lambda m: _value(m, values), text)


def fill_facts(text: Any, facts: Mapping[str, str]) -> Any:
    """``text`` with every fact slot the offer has a value for filled (a slot without a
    value stays as written, for the template-integrity gate); anything but text as it is."""
    if not isinstance(text, str):
        return text
    return _FACT.sub(lambda m: facts.get(m.group(1), m.group(0)), text)


def _value(m: re.Match[str], values: Mapping[str, str | None]) -> str:
    slot = m.group(1)
    value = values.get(slot)
    if slot.startswith(ENTRY_PREFIX) and (value is None or not clean(value, slot)):
        return m.group(0)  # unrendered: the template-integrity gate fails the message
    return clean(value, slot)


def entry_values(entry: Mapping[str, Any] | None) -> dict[str, str]:
    """The ``entry.*`` slot values of a journey instance's entry properties: text and
    numbers as written (``40.0`` as ``40``), lists of them joined with commas; other
    values fill no slot."""
    out: dict[str, str] = {}
    for key, value in (entry or {}).items():
        shown = _shown(value)
        if shown is None and isinstance(value, list):
            parts = [_shown(v) for v in value]
            shown = ", ".join(p for p in parts if p) if all(p is not None for p in parts) else None
        if shown is not None:
            out[ENTRY_PREFIX + str(key)] = shown
    return out


def _shown(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return (
            f"{value:g}" if isinstance(value, float) and not value.is_integer() else str(int(value))
        )
    if isinstance(value, str):
        return value
    return None


def row_slots(first_name: str | None, entry_json: str | None) -> dict[str, str | None]:
    """Every slot value of one message: the first name, and a journey message's entry
    properties (``entry_json``, the instance's entry as JSON)."""
    values: dict[str, str | None] = {"first_name": first_name}
    if entry_json:
        values.update(entry_values(json.loads(entry_json)))
    return values


def personalise(draft: MessageDraft, values: Mapping[str, str | None]) -> MessageDraft:
    """The draft with every declared slot filled from ``values``."""
    return draft.model_copy(
        update={
            f: fill(getattr(draft, f), values)
            for f in ("subject", "preheader", "body", "cta", "text")
        }
    )
