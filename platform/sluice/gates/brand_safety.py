"""Brand safety: no banned term, no competitor, nothing close to a banned topic.

Terms and competitor names match on the normalised text (case, accents, look-alike
letters, leetspeak and letter spacing undone), exactly or fuzzily (a word window whose
similarity to the term reaches ``fuzzy``). Topics are compared by meaning: each
sentence of the copy and the copy as a whole are embedded with MiniLM, and a cosine
similarity to a banned topic's description of at least ``topic_threshold`` fails the
message. Every distinct text is embedded once per batch, in batches.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from difflib import SequenceMatcher

import numpy as np

from sluice.gates.base import FAIL, GateContext, MessageBatch, Verdicts
from sluice.gates.text import Finding, apply_findings, copy_text, distinct, normalise

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def term_hit(normal: str, term: str, fuzzy: float) -> bool:
    """Whether normalised ``term`` occurs in normalised text ``normal``."""
    if not term:
        return False
    if f" {term} " in f" {normal} ":
        return True
    if len(term) >= 6 and term.replace(" ", "") in normal.replace(" ", ""):
        return True
    if len(term) < 5 or fuzzy >= 1:
        return False
    words, size = normal.split(), len(term.split())
    for i in range(len(words) - size + 1):
        window = " ".join(words[i : i + size])
        if (
            abs(len(window) - len(term)) <= 2
            and SequenceMatcher(None, window, term).ratio() >= fuzzy
        ):
            return True
    return False


class BrandSafetyGate:
    name = "brand_safety"

    def __init__(
        self,
        banned_terms: Sequence[str],
        competitors: Sequence[str],
        banned_topics: Sequence[str],
        topic_threshold: float,
        fuzzy: float,
    ) -> None:
        self.terms = [(normalise(t), t) for t in banned_terms]
        self.competitors = [(normalise(c), c) for c in competitors]
        self.topics = list(banned_topics)
        self.topic_threshold = topic_threshold
        self.fuzzy = fuzzy
        self._topic_vectors: np.ndarray | None = None

    def _terms(self, text: str) -> Finding:
        normal = normalise(text)
        for norm, original in self.competitors:
            if term_hit(normal, norm, self.fuzzy):
                return "competitor", f"mentions competitor {original!r}"
        for norm, original in self.terms:
            if term_hit(normal, norm, self.fuzzy):
                return "banned_term", f"contains banned term {original!r}"
        return None

    def _topic_findings(self, texts: list[str], ctx: GateContext) -> dict[str, Finding]:
        from sluice.gates.embedder import shared

        model = ctx.services.get("minilm") or shared()
        if self._topic_vectors is None:
            self._topic_vectors = model.encode(self.topics)
        pieces: list[str] = []
        owner: list[int] = []
        for k, text in enumerate(texts):
            parts = [text, *(p for p in _SENTENCE.split(text) if len(p.split()) >= 3)]
            pieces += parts
            owner += [k] * len(parts)
        sims = model.encode(pieces) @ self._topic_vectors.T
        best = np.full((len(texts), len(self.topics)), -1.0, np.float32)
        np.maximum.at(best, np.asarray(owner), sims)
        found: dict[str, Finding] = {}
        for k, text in enumerate(texts):
            j = int(np.argmax(best[k]))
            if best[k, j] >= self.topic_threshold:
                found[text] = (
                    "banned_topic",
                    f"close to banned topic {self.topics[j]!r} (similarity {best[k, j]:.2f})",
                )
        return found

    def evaluate(self, batch: MessageBatch, ctx: GateContext) -> Verdicts:
        v = Verdicts.passing(self.name, len(batch))
        texts = copy_text(batch)
        findings = distinct(texts, self._terms)
        if self.topics:
            unseen = sorted({t for t, f in zip(texts, findings, strict=True) if f is None})
            topical = self._topic_findings(unseen, ctx) if unseen else {}
            findings = [
                f if f is not None else topical.get(t) for t, f in zip(texts, findings, strict=True)
            ]
        apply_findings(v, findings, FAIL)
        return v
