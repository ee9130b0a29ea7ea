"""PII: no email address, phone number, card number or customer id in the copy.

The only personal data a message may carry is what a declared slot put there (the
recipient's first name); an address, a phone number, a card number, or the id of any
customer in the batch (the recipient's own or another's) in the copy fails the message.
The check runs on the text with slots filled, once per distinct text, after the Unicode
disguises are undone (:func:`sluice.gates.text.fold`): any dash, dot or slash of those
families separates the parts of a number or an address as its ASCII form does
(``020–7946–0958``, ``jane.doe@example·com``, ``4111/1111/1111/1111``).
"""

from __future__ import annotations

import re

from sluice.gates.base import FAIL, GateContext, MessageBatch, Verdicts
from sluice.gates.text import Finding, apply_findings, copy_text, distinct, fold
from sluice.gates.unicode import readings

EMAIL = re.compile(
    r"[\w.+-]+\s*(?:@|\(at\)|\[at\]|\bat\b)\s*[\w-]+(?:\s*(?:\.|\(dot\)|\[dot\]|\bdot\b)\s*[\w-]+)+"
)
PHONE = re.compile(r"(?<![\w.$€£¥])\+?\(?\d[\d\s().\-/]{6,}\d(?![\w%])")
CARD = re.compile(r"\b(?:\d[ \-./]?){13,19}\b")
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def luhn(digits: str) -> bool:
    total, odd = 0, True
    for ch in reversed(digits):
        d = int(ch)
        if not odd:
            d = d * 2 - 9 if d > 4 else d * 2
        total, odd = total + d, not odd
    return total % 10 == 0


def _email(text: str) -> bool:
    for m in EMAIL.finditer(text):
        found = m.group(0)
        if "@" in found or re.search(r"[(\[](?:at|dot)[)\]]|\bat\b.*\bdot\b", found):
            return True
    return False


def check(text: str, ids: frozenset[str]) -> Finding:
    """The first personal datum in any reading of ``text``, or None."""
    for reading in readings(text):
        found = _check(reading, ids)
        if found is not None:
            return found
    return None


def _check(text: str, ids: frozenset[str]) -> Finding:
    folded = fold(text)
    if _email(folded):
        return "pii_email", "the copy contains an email address"
    for m in CARD.finditer(folded):
        digits = re.sub(r"\D", "", m.group(0))
        if 13 <= len(digits) <= 19 and luhn(digits):
            return "pii_card", "the copy contains a card number"
    for m in PHONE.finditer(folded):
        raw = m.group(0).strip()
        digits = re.sub(r"\D", "", raw)
        if len(digits) >= 9 and not ISO_DATE.match(raw):
            return "pii_phone", "the copy contains a phone number"
    words = set(re.findall(r"[\w-]+", text))
    leaked = words & ids
    if leaked:
        return "pii_customer_id", "the copy contains a customer id"
    return None


class PIIGate:
    name = "pii"

    def evaluate(self, batch: MessageBatch, ctx: GateContext) -> Verdicts:
        v = Verdicts.passing(self.name, len(batch))
        ids = frozenset(str(c) for c in batch.col("customer_id") if c)
        apply_findings(v, distinct(copy_text(batch), lambda t: check(t, ids)), FAIL)
        return v
