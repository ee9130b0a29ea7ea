"""Finding links in copy and judging their hosts: one finder for every gate.

A link is an explicit URL (``scheme://...`` or ``www....``), a bare domain whose last
label is a real top-level domain by the Public Suffix List (the ``publicsuffixlist``
package's bundled snapshot; nothing is downloaded), or a dotted IPv4 address. Links are
found in the copy as written (NFKC, invisible characters and dot look-alikes undone,
but letters left as they are), so a host is judged by what it really is, not by what it
resembles: ``shop.exаmple.com`` with a Cyrillic ``а`` is its own host, encoded to IDNA
(UTS #46), and refused.

:func:`judge` refuses, in order: a host that IDNA cannot encode (``invalid_host``), a
label that mixes scripts (``mixed_script_host``), a host that is not an allowed domain or
one of its subdomains (``url_not_allowed``), naming a look-alike of an allowed domain
when its UTS #39 skeleton matches one (``lookalike_domain``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

import idna
from publicsuffixlist import PublicSuffixList

from sluice.gates.unicode import (
    DASHES,
    DOTS,
    SLASHES,
    confusable_fold,
    mixed_script,
    skeleton,
    strip_invisible,
    strip_marks,
)

_STOP = r"\s<>\"'()\[\]{}|\\^`"
EXPLICIT = re.compile(rf"(?i)(?:\b[a-z][a-z0-9+.\-]{{1,15}}://|\bwww\.)[^{_STOP}]+")
BARE = re.compile(rf"(?<![\w@.\-/])(?:[^\W_][\w\-]*\.)+[^\W\d_][\w\-]*\.?(?:[/:][^{_STOP}]*)?")
IPV4 = re.compile(rf"(?<![\w.])\d{{1,3}}(?:\.\d{{1,3}}){{3}}(?![\w.])(?:[/:][^{_STOP}]*)?")
_TRAIL = ".,;:!?…"
_DOTS_BUT_IDEOGRAPHIC = str.maketrans(
    {
        **dict.fromkeys(DASHES, "-"),
        **dict.fromkeys(DOTS.replace("\u3002", ""), "."),
        **dict.fromkeys(SLASHES, "/"),
    }
)


@dataclass(frozen=True)
class Link:
    raw: str
    host: str
    """IDNA (A-label) form, lower case, without ``www.`` or a trailing dot; the raw
    host when it cannot be encoded (``problem`` then says so)."""
    display_host: str
    """The host as written (Unicode)."""
    path: str
    """Everything after the host and port, without query, fragment or trailing slash."""
    explicit: bool
    problem: str | None = None
    disguised: bool = False
    """Found only once look-alikes were folded: not literally in the copy."""


@lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


_IDEOGRAPHIC_DOT = re.compile(r"(?<=[A-Za-z0-9])\u3002(?=[A-Za-z0-9])")


def _prepare(text: str) -> str:
    # An ideographic full stop is a label separator to IDNA, but the end of a sentence
    # in Japanese or Chinese copy: it counts as a dot only between ASCII letters.
    text = strip_invisible(unicodedata.normalize("NFKC", text))
    return _IDEOGRAPHIC_DOT.sub(".", text.translate(_DOTS_BUT_IDEOGRAPHIC))


@lru_cache(maxsize=65_536)
def _encode(host: str) -> str | None:
    try:
        return idna.encode(host, uts46=True).decode("ascii").lower()
    except UnicodeError:  # idna.IDNAError included
        return None


def parse(raw: str, explicit: bool) -> Link:
    rest = re.sub(r"(?i)^[a-z][a-z0-9+.\-]*://", "", raw.rstrip(_TRAIL))
    hostport = re.split(r"[/?#]", rest, maxsplit=1)[0].rsplit("@", 1)[-1]
    path = rest[len(rest.split("/", 1)[0]) :] if "/" in rest else ""
    path = re.split(r"[?#]", path, maxsplit=1)[0].rstrip("/")
    host = re.sub(r":\d*$", "", hostport).strip("[]").rstrip(".")
    display = host.lower().removeprefix("www.")
    encoded = _encode(display) if display else None
    problem = None
    if encoded is None:
        problem = "invalid_host"
    elif any(mixed_script(label) for label in display.split(".")):
        problem = "mixed_script_host"
    return Link(raw, encoded or display, display, path, explicit, problem)


def find_links(text: str) -> list[Link]:
    """Every link in ``text``, in order of appearance."""
    prepared = _prepare(text)
    found: list[tuple[int, Link]] = []
    taken: list[tuple[int, int]] = []
    for m in EXPLICIT.finditer(prepared):
        found.append((m.start(), parse(m.group(0), True)))
        taken.append(m.span())
    for pattern in (BARE, IPV4):
        for m in pattern.finditer(prepared):
            if any(a <= m.start() < b for a, b in taken):
                continue
            link = parse(m.group(0), False)
            if pattern is BARE and not _is_domain(link):
                continue
            found.append((m.start(), link))
            taken.append(m.span())
    return [link for _, link in sorted(found, key=lambda f: f[0])]


def links_in(text: str) -> list[Link]:
    """The links of ``text`` as written and as it reads with look-alike letters and marks
    folded to their prototypes (``Ꮟіt.ly`` is read as ``bit.ly``): a link counts if
    either reading has it."""
    found = find_links(text)
    folded = confusable_fold(strip_marks(_prepare(text)))
    if folded != text:
        seen = {(link.host, link.path) for link in found}
        found += [
            replace(link, disguised=True)
            for link in find_links(folded)
            if (link.host, link.path) not in seen
        ]
    return found


def _is_domain(link: Link) -> bool:
    """Whether the link's last label is a top-level domain on the Public Suffix List."""
    tld = _encode(link.display_host.rsplit(".", 1)[-1])
    return tld is not None and _psl().publicsuffix(tld, accept_unknown=False) is not None


def domain_allowed(host: str, allowed: Sequence[str]) -> bool:
    return any(host == d or host.endswith("." + d) for d in allowed)


def judge(link: Link, allowed: Sequence[str]) -> tuple[str, str] | None:
    """Why ``link`` may not appear in copy restricted to ``allowed`` domains, or None."""
    if link.problem == "invalid_host":
        return "invalid_host", f"link to {link.display_host!r}, which is not a valid host name"
    if link.problem == "mixed_script_host":
        return "mixed_script_host", f"link to {link.display_host}, which mixes scripts"
    if domain_allowed(link.host, allowed):
        if link.disguised:  # reads as an allowed domain, but is not literally one
            return "lookalike_domain", f"{link.raw!r} only looks like {link.display_host}"
        return None
    look = skeleton(link.display_host)
    for d in allowed:
        ds = skeleton(d)
        if look == ds or look.endswith("." + ds):
            return "lookalike_domain", f"link to {link.display_host}, a look-alike of {d}"
    return "url_not_allowed", f"link to {link.display_host}, not an allowed domain"
