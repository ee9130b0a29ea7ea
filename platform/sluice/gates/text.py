"""What content gates read: a message's copy as one text, normalised, de-duplicated.

Copy is the same for every recipient of a copy key except for filled slots, so content
gates evaluate each distinct text once and spread the verdict back over the rows
(:func:`distinct`). :func:`normalise` undoes the usual disguises (compatibility forms,
zero-width characters, leetspeak, letter spacing) before terms are matched.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from typing import TypeVar

from sluice.gates.base import MessageBatch, Verdicts

COPY_FIELDS = ("subject", "preheader", "body", "cta", "text")
URL = re.compile(r"(?i)\b(?:https?://|www\.)[^\s<>\"')\]]+")
_ZERO_WIDTH = re.compile(r"[\u200b-\u200f\u2060-\u2064\ufeff\u00ad]")
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
# Latin look-alikes from Cyrillic and Greek that NFKC leaves alone.
_CONFUSABLES = str.maketrans(
    {
        "а": "a",
        "е": "e",
        "о": "o",
        "р": "p",
        "с": "c",
        "у": "y",
        "х": "x",
        "і": "i",
        "ј": "j",
        "ѕ": "s",
        "ο": "o",
        "α": "a",
        "ε": "e",
        "ι": "i",
        "κ": "k",
        "ν": "v",
        "τ": "t",
        "ρ": "p",
    }
)
_SPACED = re.compile(r"\b(?:[a-z][ .\-_*]){3,}[a-z]\b")

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


def fold(text: str) -> str:
    """Compatibility forms, accents, zero-width characters and case folded away."""
    text = _ZERO_WIDTH.sub("", unicodedata.normalize("NFKC", text))
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return text.casefold().translate(_CONFUSABLES)


def normalise(text: str) -> str:
    """:func:`fold`, then leetspeak decoded, letter spacing ("i g n o r e") joined,
    runs of one letter squeezed and anything else made single spaces."""
    text = fold(text).translate(_LEET)
    text = _SPACED.sub(lambda m: re.sub(r"[ .\-_*]", "", m.group(0)), text)
    text = re.sub(r"([a-z])\1{2,}", r"\1", text)
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


def host_of(url: str) -> str:
    """Lower-case host of an absolute or ``www.`` URL, without port or ``www.``."""
    rest = re.sub(r"(?i)^https?://", "", url)
    host = re.split(r"[/?#]", rest, maxsplit=1)[0].rsplit("@", 1)[-1].split(":", 1)[0]
    return host.lower().removeprefix("www.").rstrip(".")


def domain_allowed(host: str, allowed: Sequence[str]) -> bool:
    return any(host == d or host.endswith("." + d) for d in allowed)


Finding = tuple[str, str] | None
"""A content problem as (reason code, detail), or None."""


def apply_findings(v: Verdicts, findings: Sequence[Finding], outcome: int) -> None:
    """Record each row's finding on the gate's verdicts with ``outcome``."""
    for i, f in enumerate(findings):
        if f is not None and v.outcome[i] == 0:
            v.outcome[i], v.reason[i], v.detail[i] = outcome, f[0], f[1]
