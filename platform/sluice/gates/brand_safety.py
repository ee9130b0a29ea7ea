"""Brand safety: no banned term, no competitor, nothing close to a banned topic.

Terms and competitor names match on the normalised text (case, accents, look-alike
letters, leetspeak and letter spacing undone), exactly or fuzzily (a word window whose
similarity to the term reaches ``fuzzy``). Topics are compared by meaning: each
sentence of the copy and the copy as a whole are embedded with MiniLM, and a cosine
similarity to a banned topic's description of at least ``topic_threshold`` fails the
message. Each distinct draft (the filled slots masked, nothing else) is judged once per
run, and each distinct sentence embedded once, in batches.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from difflib import SequenceMatcher

import numpy as np
from pydantic import ValidationError

from sluice.contracts.drafts import MessageDraft
from sluice.gates.base import FAIL, GateContext, MessageBatch, Verdicts
from sluice.gates.text import COPY_FIELDS, Finding, apply_findings, copy_text, normalise
from sluice.gates.unicode import readings
from sluice.generation.slots import fill, row_slots

CACHE_MAX = 200_000
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
        if abs(len(window) - len(term)) > 2 or (window[0] != term[0] and window[-1] != term[-1]):
            continue
        matcher = SequenceMatcher(None, window, term)
        if matcher.real_quick_ratio() >= fuzzy and matcher.ratio() >= fuzzy:
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
        self._vectors: dict[str, np.ndarray] = {}
        self._judged: dict[str, Finding] = {}
        self._templates: dict[str, tuple[str, str]] = {}

    def _terms(self, text: str) -> Finding:
        for reading in readings(text):
            found = self._terms_in(normalise(reading))
            if found is not None:
                return found
        return None

    def _terms_in(self, normal: str) -> Finding:
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
        fresh = sorted({p for p in pieces if p not in self._vectors})
        if fresh:
            if len(self._vectors) > CACHE_MAX:
                self._vectors.clear()
            self._vectors.update(zip(fresh, model.encode(fresh), strict=True))
        sims = np.stack([self._vectors[p] for p in pieces]) @ self._topic_vectors.T
        best = np.full((len(texts), len(self.topics)), -1.0, np.float32)
        np.maximum.at(best, np.asarray(owner), sims)
        found: dict[str, Finding] = {}
        for k, text in enumerate(texts):
            j = int(np.argmax(best[k]))
            found[text] = (
                (
                    "banned_topic",
                    f"close to banned topic {self.topics[j]!r} (similarity {best[k, j]:.2f})",
                )
                if best[k, j] >= self.topic_threshold
                else None
            )
        return found

    def _masked(self, batch: MessageBatch, texts: list[str]) -> list[str]:
        """Each row's copy with exactly the spans its name slot filled masked: the row's
        draft with the neutral greeting in the slot (and a journey message's entry
        properties in theirs, to be judged), where filling the draft with the row's own
        values gives the row's copy; the copy as it is otherwise."""
        if not batch.has("draft_json"):
            return texts
        names = batch.col("first_name") if batch.has("first_name") else [None] * len(texts)
        entries = batch.col("entry") if batch.has("entry") else [None] * len(texts)
        out = list(texts)
        for k, raw in enumerate(batch.col("draft_json")):
            if not isinstance(raw, str) or not raw:
                continue
            template = self._templates.get(raw)
            if template is None:
                try:
                    draft = MessageDraft.model_validate_json(raw)
                except ValidationError:  # not a draft: the row is judged as it is
                    template = ("", "")
                else:
                    fields = [getattr(draft, f, None) for f in COPY_FIELDS]
                    unfilled = "\n".join(str(v) for v in fields if v is not None)
                    template = (unfilled, fill(unfilled, {}) or "")
                if len(self._templates) > CACHE_MAX:
                    self._templates.clear()
                self._templates[raw] = template
            name = names[k] if isinstance(names[k], str) else None
            entry = entries[k] if isinstance(entries[k], str) else None
            if not template[0]:
                continue
            if entry is None:
                if fill(template[0], {"first_name": name}) == texts[k]:
                    out[k] = template[1]
                continue
            # A journey message's entry properties are judged: only the name is masked.
            slots = row_slots(name, entry)
            if fill(template[0], slots) == texts[k]:
                out[k] = fill(template[0], {**slots, "first_name": None}) or ""
        return out

    def evaluate(self, batch: MessageBatch, ctx: GateContext) -> Verdicts:
        v = Verdicts.passing(self.name, len(batch))
        texts = copy_text(batch)
        # Brand safety is a matter of the copy, not of the greeting: where the row carries
        # its draft, the draft is judged with exactly the spans its slots filled masked
        # (the neutral greeting in place of the name), so a draft is judged once, not once
        # per name, and a name can never hide a word of the copy. Rows without a draft are
        # judged as they are. Judgements are kept across batches: they depend only on the
        # text and this gate's settings.
        masked = self._masked(batch, texts)
        unseen = sorted(set(masked) - self._judged.keys())
        if len(self._judged) > CACHE_MAX:
            self._judged.clear()
        for text in unseen:
            self._judged[text] = self._terms(text)
        if self.topics:
            open_ = [t for t in unseen if self._judged[t] is None]
            if open_:
                self._judged.update(self._topic_findings(open_, ctx))
        apply_findings(v, [self._judged[m] for m in masked], FAIL)
        return v
