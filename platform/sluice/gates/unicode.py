"""Undoing Unicode disguises before the content gates match, from maintained data.

Copy can look harmless to a pattern and mean something else to a reader or a model.
Everything here works on Unicode's own data rather than hand-kept tables:

- **invisible characters**: every format character (category ``Cf``: zero-width
  characters, bidi controls, TAG characters, soft hyphens), variation selectors and the
  other default-ignorable fillers are removed, and combining marks stacked on letters are
  stripped, before anything is matched;
- **hidden text**: TAG characters spell ASCII that no one sees but a model reads, and
  bidi overrides show text in the reverse of its stored order; :func:`readings` returns
  each way the text may be read, and the gates judge every one;
- **compatibility forms** (full-width, mathematical, ligatures) by NFKC, and the dash,
  dot and slash families by their ASCII equivalent (:func:`separators`);
- **look-alikes** by the UTS #39 confusable skeleton (ICU's ``SpoofChecker``, through
  PyICU), applied to every non-ASCII character: Cyrillic ``а``, Greek ``ο``, Armenian
  ``օ`` and dotless ``ı`` all read as their Latin prototypes;
- **scripts** by ICU's script property (:func:`scripts`), so mixed-script names can be
  refused.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from functools import lru_cache

import icu

_TAG_FIRST = 0xE0000
_FILLERS = frozenset("\u115f\u1160\u3164\uffa0\u034f\u17b4\u17b5\u180b\u180c\u180d\u180f")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_TAGS = re.compile("[\U000e0020-\U000e007e]")
_OVERRIDE = re.compile(r"[\u202d\u202e\u2066-\u2068]([^\u202c\u2069\n]*)[\u202c\u2069]?")
_RTL = frozenset("\u202e\u2067")
DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u2e3a\u2e3b\ufe58\ufe63\uff0d\u2043\u02d7"
DOTS = "\u00b7\u2024\u2027\u2219\u22c5\u30fb\uff0e\u3002\uff61\u0701\u2e31\u318d\u16eb"
SLASHES = "\u2044\u2215\u29f8\uff0f\u27cb\u2cc6"
_SEPARATORS = str.maketrans(
    {**dict.fromkeys(DASHES, "-"), **dict.fromkeys(DOTS, "."), **dict.fromkeys(SLASHES, "/")}
)
_COMMON = frozenset({"Zyyy", "Zinh", "Zzzz"})
# Script sets a single word may legitimately mix (UTS #39 "highly restrictive").
_MIXES = (
    frozenset({"Latn", "Hani", "Hira", "Kana"}),
    frozenset({"Latn", "Hani", "Bopo"}),
    frozenset({"Latn", "Hani", "Hang"}),
)
_SPOOF = icu.SpoofChecker()


def _char_class(points: list[int]) -> re.Pattern[str]:
    ranges: list[tuple[int, int]] = []
    for cp in points:
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1] = (ranges[-1][0], cp)
        else:
            ranges.append((cp, cp))
    return re.compile("[" + "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges) + "]")


@lru_cache(maxsize=1)
def _tables() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    """From the Unicode database of this Python, once per process: the invisible
    characters (format characters, variation selectors, blank fillers), the combining
    marks, and the styled letters and digits that compatibility folding makes ASCII."""
    invisible: list[int] = []
    marks: list[int] = []
    styled: list[int] = []
    for cp in range(0x80, sys.maxunicode + 1):
        ch = chr(cp)
        cat = unicodedata.category(ch)
        if cat == "Cf" or ch in _FILLERS or 0xFE00 <= cp <= 0xFE0F or 0xE0100 <= cp <= 0xE01EF:
            invisible.append(cp)
        elif cat in ("Mn", "Me"):
            marks.append(cp)
        elif cat[0] in "LN" and unicodedata.decomposition(ch).startswith("<"):
            folded = unicodedata.normalize("NFKC", ch)
            if folded.isascii() and folded.isalnum():
                styled.append(cp)
    return _char_class(invisible), _char_class(marks), _char_class(styled)


def strip_invisible(text: str) -> str:
    """``text`` without format characters, variation selectors and blank fillers."""
    if text.isascii():
        return text
    return _tables()[0].sub("", text).replace("\u2800", " ")  # braille blank: a space


def hidden_tags(text: str) -> str:
    """The ASCII that TAG characters (U+E0020..U+E007E) spell in ``text``, in order."""
    return "".join(chr(ord(c) - _TAG_FIRST) for c in _TAGS.findall(text))


def _despaced(text: str) -> str | None:
    """Letter-spaced text ("i g n o r e   a l l") with its letters joined, when most of
    its tokens are single characters; None for ordinary text."""
    tokens = text.split()
    if len(tokens) < 6 or 2 * sum(len(t) == 1 for t in tokens) < len(tokens):
        return None
    return re.sub(r"(?<=\S) (?=\S)", "", re.sub(r"[ \t]{2,}", "\x00", text)).replace("\x00", " ")


def _styled(text: str) -> bool:
    """Whether letters are written with styled look-alikes (mathematical, full-width,
    enclosed) that compatibility folding turns into ASCII."""
    return any(
        not c.isascii() and c.isalnum() and unicodedata.normalize("NFKC", c).isascii() for c in text
    )


@lru_cache(maxsize=16_384)
def readings(text: str) -> tuple[str, ...]:
    """Every way ``text`` may be read: as stored (invisible characters dropped), with its
    TAG characters spelt out where they stand and alone, with bidi-overridden runs in the
    order a reader sees them, with letter spacing closed up, and, for styled letters,
    with the capital I read as the l it often stands for. Plain text has one reading."""
    out = [text]
    spaced = _despaced(text)
    if spaced is not None:
        out.append(spaced)
    if text.isascii():
        return tuple(out)
    hidden = hidden_tags(text)
    if hidden:
        out.append(_TAGS.sub(lambda m: chr(ord(m.group(0)) - _TAG_FIRST), text))
        out.append(hidden)
    if any(c in _RTL for c in text):
        out.append(
            _OVERRIDE.sub(lambda m: m.group(1)[::-1] if m.group(0)[0] in _RTL else m.group(1), text)
        )
    if _styled(text) or any(_l_like(c) for c in set(_NON_ASCII.findall(text))):
        # A capital I and its look-alikes stand for l as often as for i.
        out.append(
            _NON_ASCII.sub(
                lambda m: "l" if _l_like(m.group(0)) else m.group(0), canonical(text)
            ).replace("I", "l")
        )
    return tuple(out)


def separators(text: str) -> str:
    """Dash, dot and slash look-alikes as ``-``, ``.`` and ``/``."""
    return text if text.isascii() else text.translate(_SEPARATORS)


def canonical(text: str) -> str:
    """NFKC, separators, no invisible characters, no combining marks on letters."""
    if text.isascii():
        return text
    text = strip_invisible(separators(unicodedata.normalize("NFKC", text)))
    return strip_marks(text)


def strip_marks(text: str) -> str:
    """``text`` decomposed, without its combining marks (accents, stacked marks)."""
    if text.isascii():
        return text
    return _tables()[1].sub("", unicodedata.normalize("NFKD", text))


@lru_cache(maxsize=65_536)
def _prototype(ch: str) -> str:
    skeleton = str(_SPOOF.getSkeleton(0, ch))
    if skeleton == "l" and ch.isupper():  # UTS #39 files capital I under l
        return "i"
    return skeleton.casefold() if skeleton.isascii() else ch


@lru_cache(maxsize=65_536)
def _l_like(ch: str) -> bool:
    return str(_SPOOF.getSkeleton(0, ch)) == "l"


def confusable_fold(text: str) -> str:
    """Each non-ASCII character replaced by its UTS #39 prototype where that is ASCII."""
    if text.isascii():
        return text
    return _NON_ASCII.sub(lambda m: _prototype(m.group(0)), text)


def skeleton(text: str) -> str:
    """The UTS #39 skeleton of ``text`` (two strings that look alike share it)."""
    return str(_SPOOF.getSkeleton(0, text)).casefold()


@lru_cache(maxsize=65_536)
def _script(ch: str) -> str:
    return str(icu.Script.getScript(ch).getShortName())


def scripts(word: str) -> frozenset[str]:
    """The scripts of the letters of ``word`` (Common and Inherited left out)."""
    return frozenset(s for c in word if c.isalpha() and (s := _script(c)) not in _COMMON)


def mixed_script(word: str) -> bool:
    """Whether ``word`` mixes scripts that no single writing system combines."""
    found = scripts(word)
    return len(found) > 1 and not any(found <= allowed for allowed in _MIXES)
