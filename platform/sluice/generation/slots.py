"""Filling declared slots (``{first_name}``) after generation, with escaping.

Only slots in :data:`sluice.contracts.briefs.SLOTS` are filled. A value is cleaned
before it goes in: control characters and braces are removed (so a value can never
open another slot), white space is collapsed and the length is bounded; an absent
value becomes the channel's neutral greeting word. Anything else in braces stays as
it is, for the template-integrity gate to catch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from sluice.contracts.briefs import SLOTS
from sluice.contracts.drafts import MessageDraft

_SLOT = re.compile(r"\{(" + "|".join(map(re.escape, SLOTS)) + r")\}")
_UNSAFE = re.compile(r"[\x00-\x1f\x7f{}<>]")
NEUTRAL = {"first_name": "there"}
MAX_VALUE = 50


def clean(value: str | None, slot: str) -> str:
    text = " ".join(_UNSAFE.sub("", value or "").split())[:MAX_VALUE]
    return text or NEUTRAL.get(slot, "")


def fill(text: str | None, values: Mapping[str, str | None]) -> str | None:
    if text is None:
        return None
    return _SLOT.sub(lambda m: clean(values.get(m.group(1)), m.group(1)), text)


def personalise(draft: MessageDraft, values: Mapping[str, str | None]) -> MessageDraft:
    """The draft with every declared slot filled from ``values``."""
    return draft.model_copy(
        update={
            f: fill(getattr(draft, f), values)
            for f in ("subject", "preheader", "body", "cta", "text")
        }
    )
