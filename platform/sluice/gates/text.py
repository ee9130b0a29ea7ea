"""What content gates read: a message's copy as one text, normalised, de-duplicated.

Copy is the same for every recipient of a copy key except for filled slots, so content
gates evaluate each distinct text once and spread the verdict back over the rows
(:func:`distinct`). :func:`fold` undoes the Unicode disguises
(:mod:`sluice.gates.unicode`: compatibility forms, invisible characters, combining marks,
UTS #39 look-alikes) and :func:`normalise` the typographic ones (leetspeak, letter
spacing) before terms are matched. Links are found and judged by :mod:`sluice.gates.links`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import TypeVar

from sluice.gates.base import MessageBatch, Verdicts
from sluice.gates.unicode import canonical, confusable_fold

COPY_FIELDS = ("subject", "preheader", "body", "cta", "text")
_LEET = str.maketrans(
    {
        "0": "o",
        "1": "i",
        "3": "e",
        "4": "a",
        "5": "s",
        "7": "t",
        "8": "b",
        "@": "a",
        "$": "s",
        "|": "i",
        "!": "i",
        "+": "t",
    }
)
_SPACED = re.compile(r"\b(?:[a-z][ .\-_*]){1,}[a-z]\b")

T = TypeVar("T")
MEMO_MAX = 200_000


def copy_text(batch: MessageBatch, fields: Sequence[str] = COPY_FIELDS) -> list[str]:
    """Each row's copy fields joined by newlines (absent fields skipped)."""
    cols = [batch.col(f) for f in fields if batch.has(f)]
    return [
        "\n".join(str(c[i]) for c in cols if c[i] is not None and c[i] == c[i])
        for i in range(len(batch))
    ]


def distinct(
    keys: Sequence[str], fn: Callable[[str], T], memo: dict[str, T] | None = None
) -> list[T]:
    """``fn`` applied once per distinct key, returned per row. With ``memo`` (a gate's
    own, for results that depend only on the key and the gate's settings), keys judged in
    earlier batches are not judged again."""
    seen: dict[str, T] = {} if memo is None else memo
    if memo is not None and len(memo) > MEMO_MAX:
        memo.clear()
    return [seen[k] if k in seen else seen.setdefault(k, fn(k)) for k in keys]


@lru_cache(maxsize=16_384)
def fold(text: str) -> str:
    """Compatibility forms, separators, invisible characters, accents and other marks,
    case, and look-alike letters (their UTS #39 prototypes) folded away."""
    # Prototypes before and after case folding: a capital's look-alike is not always its
    # small letter's (Cherokee capitals fold to letters that resemble nothing Latin).
    return confusable_fold(confusable_fold(canonical(text)).casefold()).casefold()


def normalise(text: str) -> str:
    """:func:`fold`, then leetspeak decoded, letter spacing ("i g n o r e") joined,
    runs of one letter squeezed and anything else made single spaces."""
    text = fold(text).translate(_LEET)
    text = _SPACED.sub(lambda m: re.sub(r"[ .\-_*]", "", m.group(0)), text)
    text = re.sub(r"([a-z])\1{2,}", r"\1", text)
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


def host_of(url: str) -> str:
    """Lower-case host of a trusted absolute URL (an offer's page), without ``www.``."""
    rest = re.sub(r"(?i)^https?://", "", url)
    host = re.split(r"[/?#]", rest, maxsplit=1)[0].rsplit("@", 1)[-1].split(":", 1)[0]
    return host.lower().removeprefix("www.").rstrip(".")


Finding = tuple[str, str] | None
"""A content problem as (reason code, detail), or None."""


def apply_findings(v: Verdicts, findings: Sequence[Finding], outcome: int) -> None:
    """Record each row's finding on the gate's verdicts with ``outcome``."""
    for i, f in enumerate(findings):
        if f is not None and v.outcome[i] == 0:
            v.outcome[i], v.reason[i], v.detail[i] = outcome, f[0], f[1]
