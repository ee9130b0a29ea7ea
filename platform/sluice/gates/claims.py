"""Claims: every price, percentage, date and URL in the copy is one of the offer's facts.

Numbers are read the way people write them ("$119.99", "119,99 €", "EUR 134.25",
"20 dollars", "20%", "20 percent"), dates as ISO, "December 31", "31 Dec 2026",
"31.12.2026", "31-12-2026" or "12/31", after the Unicode disguises are undone
(:func:`sluice.gates.unicode.canonical`: full-width ``７０％`` and ``＄５`` read as 70% and
$5, invisible characters inside a number are dropped). A price may be the offer price, the
price before the discount or the saving; a percentage must be the discount; a date must be
the first or last day of the offer; a link (found by :func:`sluice.gates.links.find_links`)
must be the offer's page, or its host when the link has no path. Anything else is an
invented claim and fails the message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from sluice.contracts.decisions import OfferCatalog
from sluice.contracts.offers import Offer
from sluice.gates.base import FAIL, GateContext, MessageBatch, Verdicts
from sluice.gates.links import links_in, parse
from sluice.gates.text import Finding, apply_findings, copy_text, distinct
from sluice.gates.unicode import canonical, readings

SYMBOLS = {
    "$": "USD",
    "US$": "USD",
    "€": "EUR",
    "£": "GBP",
    "¥": "JPY",
    "DOLLAR": "USD",
    "DOLLARS": "USD",
    "BUCKS": "USD",
    "EURO": "EUR",
    "EUROS": "EUR",
    "POUND": "GBP",
    "POUNDS": "GBP",
    "YEN": "JPY",
}
_NUM = r"\d{1,3}(?:[,.\s]\d{3})*(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?"
_CUR = r"(?:\bUS)?[$€£¥]|\b(?:USD|EUR|GBP|JPY|SEK|CHF|CAD|AUD)\b"
_WORD = r"\b(?:dollars?|bucks|euros?|pounds?|yen)\b"
MONEY = re.compile(
    rf"(?P<c1>{_CUR})\s?(?P<n1>{_NUM})|(?P<n2>{_NUM})\s?(?P<c2>{_CUR}|{_WORD})", re.IGNORECASE
)
PERCENT = re.compile(rf"(?P<n>{_NUM})\s?(?:%|٪|percent\b|per cent\b|pct\b)", re.IGNORECASE)
MONTHS = {
    m: i + 1
    for i, names in enumerate(
        [
            "jan january",
            "feb february",
            "mar march",
            "apr april",
            "may",
            "jun june",
            "jul july",
            "aug august",
            "sep sept september",
            "oct october",
            "nov november",
            "dec december",
        ]
    )
    for m in names.split()
}
_MON = "|".join(sorted(MONTHS, key=len, reverse=True))
ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
MONTH_DAY = re.compile(rf"(?i)\b({_MON})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?(?:,?\s+(\d{{4}}))?\b")
DAY_MONTH = re.compile(
    rf"(?i)\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MON})\.?(?:,?\s+(\d{{4}}))?\b"
)
SLASH_DATE = re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{2,4})\b")
DOT_DATE = re.compile(r"\b(\d{1,2})\.(\d{1,2})\.(\d{4}|\d{2}\b)")
DASH_DATE = re.compile(r"\b(\d{1,2})-(\d{1,2})-(\d{4})\b")


def number(text: str) -> float:
    """A written amount as a float: "1,299.00", "1.299,00", "119,99", "1 299"."""
    t = text.replace(" ", "")
    decimals = re.search(r"[.,](\d{1,2})$", t)
    if decimals:
        return float(re.sub(r"[.,]", "", t[: decimals.start()]) + "." + decimals.group(1))
    return float(re.sub(r"[.,]", "", t))


@dataclass(frozen=True)
class Facts:
    currency: str
    amounts: tuple[float, ...]
    percent: float | None
    dates: tuple[date, ...]
    url: str
    host: str
    path: str

    @classmethod
    def of(cls, offer: Offer) -> Facts:
        amounts: list[float] = []
        if offer.price is not None:
            amounts.append(offer.price)
            if offer.discount_pct is not None and offer.discount_pct < 100:
                before = offer.price / (1 - offer.discount_pct / 100)
                amounts += [before, before - offer.price]
        page = parse(str(offer.url), True)
        return cls(
            offer.currency,
            tuple(amounts),
            offer.discount_pct,
            (offer.valid_from, offer.valid_until),
            str(offer.url).rstrip("/"),
            page.host,
            page.path,
        )


def _date_ok(facts: Facts, month: int, day: int, year: int | None) -> bool:
    return any(
        d.month == month and d.day == day and (year is None or d.year == year) for d in facts.dates
    )


def check(raw: str, facts: Facts) -> Finding:
    """The first claim in any reading of ``raw`` that the offer's facts do not back."""
    for reading in readings(raw):
        found = _check(reading, facts)
        if found is not None:
            return found
    return None


def _check(raw: str, facts: Facts) -> Finding:
    text = canonical(raw)
    for m in MONEY.finditer(text):
        cur = (m.group("c1") or m.group("c2")).upper()
        code = SYMBOLS.get(cur, cur)
        if code != facts.currency:
            return "claim_currency", f"{m.group(0).strip()}: offer is in {facts.currency}"
        value = number(m.group("n1") or m.group("n2"))
        if not any(abs(value - a) < 0.015 for a in facts.amounts):
            return "claim_price", f"{m.group(0).strip()} is not a price of this offer"
    for m in PERCENT.finditer(text):
        value = number(m.group("n"))
        if facts.percent is None or abs(value - facts.percent) > 0.5:
            return "claim_percentage", f"{m.group(0).strip()} is not this offer's discount"
    for m in ISO_DATE.finditer(text):
        y, mo, d = (int(g) for g in m.groups())
        if not _date_ok(facts, mo, d, y):
            return "claim_date", f"{m.group(0)} is not a date of this offer"
    for m in MONTH_DAY.finditer(text):
        mo, d = MONTHS[m.group(1).lower()], int(m.group(2))
        if not _date_ok(facts, mo, d, int(m.group(3)) if m.group(3) else None):
            return "claim_date", f"{m.group(0).strip()} is not a date of this offer"
    for m in DAY_MONTH.finditer(text):
        d, mo = int(m.group(1)), MONTHS[m.group(2).lower()]
        if not _date_ok(facts, mo, d, int(m.group(3)) if m.group(3) else None):
            return "claim_date", f"{m.group(0).strip()} is not a date of this offer"
    for m in SLASH_DATE.finditer(text):
        a, b = int(m.group(1)), int(m.group(2))
        year = int(m.group(3))
        year += 2000 if year < 100 else 0
        if not (_date_ok(facts, a, b, year) or _date_ok(facts, b, a, year)):
            return "claim_date", f"{m.group(0)} is not a date of this offer"
    for m in (*DOT_DATE.finditer(text), *DASH_DATE.finditer(text)):
        d, mo, year = int(m.group(1)), int(m.group(2)), int(m.group(3))
        year += 2000 if year < 100 else 0
        if not _date_ok(facts, mo, d, year):
            return "claim_date", f"{m.group(0)} is not a date of this offer"
    for link in links_in(raw):
        same_page = link.host == facts.host and (
            link.path == facts.path or not (link.path or link.explicit)
        )
        if link.problem is not None or not same_page:
            return "claim_url", f"{link.raw} is not this offer's page"
    return None


class ClaimsGate:
    name = "claims"

    def __init__(self, catalog: OfferCatalog) -> None:
        self.facts = {o.offer_id: Facts.of(o) for o in catalog.offers}
        self._memo: dict[str, Finding] = {}

    def evaluate(self, batch: MessageBatch, ctx: GateContext) -> Verdicts:
        v = Verdicts.passing(self.name, len(batch))
        offers = batch.col("offer_id")
        texts = copy_text(batch)
        keys = [f"{o}\x00{t}" for o, t in zip(offers, texts, strict=True)]

        def one(key: str) -> Finding:
            offer_id, text = key.split("\x00", 1)
            facts = self.facts.get(offer_id)
            if facts is None:
                return "unknown_offer", f"{offer_id} is not in the catalog"
            return check(text, facts)

        apply_findings(v, distinct(keys, one, self._memo), FAIL)
        return v
