"""Injection and template integrity: copy that tries to steer a model or a reader.

Checked on every message, once per distinct text, in every way the text may be read
(:func:`sluice.gates.unicode.readings`: hidden TAG text spelt out, bidi overrides
undone) and after undoing disguises (:func:`sluice.gates.text.normalise`):

- instruction-like text: overriding instructions, new roles and modes, requests for the
  prompt or secrets, chat role markers and model control tokens (``prompt_injection``);
- template integrity: slots left unrendered (``unrendered_slot``), HTML or script
  (``html_payload``), markdown images (``markdown_image``), links outside the allowed
  domains, look-alikes of them and mixed-script or invalid hosts
  (:func:`sluice.gates.links.judge`);
- a slot value that is not a plausible value for its slot (a "first name" that is a
  sentence, a command or a number) goes to a person (``suspicious_slot_value``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

import numpy as np

from sluice.gates.base import FAIL, REVIEW, GateContext, MessageBatch, Verdicts
from sluice.gates.links import judge, links_in
from sluice.gates.text import Finding, apply_findings, copy_text, distinct, fold, normalise
from sluice.gates.unicode import readings
from sluice.generation.slots import clean

_W = r"(?: \w+){0,5}"
_TARGET = (
    r"(?:instruction|instructions|prompt|prompts|rule|rules|guideline|guidelines|direction|"
    r"directions|directive|directives|context|constraint|constraints|polic(?:y|ies)|"
    r"programming|training|guardrails?|filters?|restrictions?|messages?|commands?|orders?|"
    r"system|above|before|everything|all that|safety|settings|content policy|template|brief)"
)
INSTRUCTION = [
    re.compile(p)
    for p in (
        rf"\b(?:ignore|ignoring|disregard|forget|override|overrule|bypass|skip|drop|abandon|"
        rf"discard|neglect|cancel|erase|delete|reset|clear|stop following|do not follow|"
        rf"don t follow|dont follow|no longer follow){_W} {_TARGET}\b",
        r"\byou (?:are|re) (?:now|no longer|free|not bound|unbound|an? (?:unrestricted|"
        r"uncensored|evil|new))\b",
        r"\b(?:act|acting|behave|respond|answer|reply) (?:as|like) (?:an?|the|my|if)\b",
        r"\b(?:pretend|imagine|suppose) (?:to be|you|that you|we)\b",
        r"\brole ?play\b|\bpersona\b|\bin character\b|"
        r"\bfrom now on,? (?:you|your|ignore|act|respond|answer|only)\b",
        r"\bnew (?:instruction|instructions|rule|rules|task|role|persona|directive|system)\b",
        r"\byour (?:new |real |true |actual )?(?:task|job|role|goal|purpose|instructions?) "
        r"(?:is|are|now)\b",
        r"\b(?:developer|dev|god|admin|administrator|debug|maintenance|root|sudo|unsafe|"
        r"unrestricted|evil|opposite|jailbreak|jailbroken) mode\b",
        r"\bjail ?break|\bjail ?broken\b|\bdo anything now\b|\bdan (?:mode|prompt|can|will)\b|"
        r"\b(?:as|you are) dan\b",
        r"\b(?:unfiltered|uncensored|unrestricted|unaligned|unmoderated)\b",
        r"\b(?:no|without|zero|remove|removing|disable|disabling|turn off|switch off|lift|"
        r"lifting) (?:any |all |the |your |content |safety |ethical |moral )*(?:restrictions?|"
        r"limits?|limitations?|rules?|filters?|filtering|censorship|guardrails?|safety|"
        r"policies|policy|moderation|ethics|boundaries)\b",
        r"\b(?:reveal|print|show|output|repeat|display|leak|tell me|tell us|give me|dump|"
        r"write out|spell out|return|echo|paste|share|expose|list|recite|translate)"
        rf"{_W} (?:system prompt|prompt|instructions|hidden|secret|secrets|password|passwords|"
        r"api key|api keys|token|tokens|credentials|configuration|config|internal|initial)\b",
        r"\bsystem prompt\b|\bprompt injection\b|\bhidden instructions?\b|\binitial prompt\b",
        r"\b(?:send|forward|transfer|wire|upload|exfiltrate|leak) (?:all |every |the |your |"
        r"their |customer |user |my )*(?:customer|customers|user|users|data|database|records|"
        r"money|funds|gift cards?|bitcoin|crypto|passwords?|credentials|details)\b",
        r"\b(?:execute|run|eval|exec) (?:this|the following|code|command|script|shell)\b",
        r"\brm rf\b|\bsudo\b|\bcurl http|\bwget http|\bbase ?6[4a]\b|\beval\b|\bexec\b",
        r"\b(?:repeat|print|output|recite|reproduce|echo|copy|paste|spell out|write out|show|"
        r"display|tell|give|quote)\b(?: \w+){0,4} (?:above|verbatim|word for word)\b",
        r"\b(?:end|begin|start) (?:of )?(?:system|instructions?|prompt|user input|context)\b",
        r"\bthe (?:assistant|ai|model|bot|llm|chatbot) (?:must|should|will|shall)\b",
        r"\b(?:above|previous|prior|earlier|preceding) (?:text|message|content|instructions?|"
        r"prompt) (?:is|was|are|were) (?:fake|false|wrong|void|cancelled|invalid|a test)\b",
        r"\bimportant (?:new )?(?:instruction|update|message) (?:for|to) (?:the )?(?:ai|"
        r"assistant|model|bot|llm)\b",
        r"\b(?:hey|dear|attention|note to) (?:ai|assistant|chatgpt|gpt|claude|llm|model|bot|"
        r"language model)\b",
    )
]
MARKERS = re.compile(
    r"(?im)^\s*(?:system|assistant|user|developer|human|ai|bot|model)\s*[:>]|"
    r"<\|[^|]{1,30}\|>|\[/?inst\]|<</?sys>>|</?s>|^\s*#{2,}\s*(?:instruction|system|response|"
    r"input|context)|\[(?:system|assistant|user)\]"
)
SLOT = re.compile(r"\{[^{}\n]{0,60}\}|\$\{|%\(\w+\)s|<%|%>")
HTML = re.compile(
    r"(?i)<\s*/?\s*(?:script|iframe|img|a|style|object|embed|svg|form|input|link|meta|body|"
    r"html|div|span|button|video|audio|base|math|details|template|frame|frameset|applet)\b|"
    r"javascript\s*:|vbscript\s*:|data\s*:\s*text/html|\bon[a-z]+\s*=|&lt;\s*script|&#x?[0-9a-f]+;"
)
MD_IMAGE = re.compile(r"!\[[^\]]*\]\s*\([^)]*\)|!\[[^\]]*\]\s*\[")
NAME = re.compile(r"^[^\W\d_]+(?:[ '\-.’][^\W\d_]+){0,3}\.?$")


def check(text: str, allowed: Sequence[str]) -> Finding:
    """The first problem in any reading of ``text``, or None."""
    for reading in readings(text):
        found = _check(reading, allowed)
        if found is not None:
            return found
    return None


def _check(text: str, allowed: Sequence[str]) -> Finding:
    folded = fold(text)
    if MARKERS.search(folded):
        return "prompt_injection", "chat role marker or model control token in the copy"
    normal = normalise(text)
    squeezed = " ".join(fold(text).split())
    for pattern in INSTRUCTION:
        if pattern.search(normal) or pattern.search(re.sub(r"[^a-z0-9 ]+", " ", squeezed)):
            return "prompt_injection", f"instruction-like text: /{pattern.pattern[:40]}.../"
    if SLOT.search(folded):
        return "unrendered_slot", "a template slot was left unrendered"
    if MD_IMAGE.search(folded):
        return "markdown_image", "markdown image in the copy"
    if HTML.search(folded):
        return "html_payload", "HTML or script in the copy"
    for link in links_in(text):
        problem = judge(link, allowed)
        if problem is not None:
            return problem
    return None


def plausible_name(value: str) -> bool:
    """A name is letters in up to four parts (combining marks of any script allowed)."""
    letters = "".join(c for c in value.strip() if not unicodedata.category(c).startswith("M"))
    return len(value) <= 40 and bool(NAME.match(letters))


class InjectionGate:
    name = "injection"

    def __init__(self, allowed_domains: Sequence[str]) -> None:
        self.allowed = tuple(d.lower().removeprefix("www.") for d in allowed_domains)
        self._memo: dict[str, Finding] = {}

    def evaluate(self, batch: MessageBatch, ctx: GateContext) -> Verdicts:
        v = Verdicts.passing(self.name, len(batch))
        texts = copy_text(batch)
        apply_findings(v, distinct(texts, lambda t: check(t, self.allowed), self._memo), FAIL)
        if batch.has("first_name"):
            names = batch.col("first_name")
            odd = np.array(
                [
                    n is not None and n == n and str(n).strip() != "" and not plausible_name(str(n))
                    for n in names
                ],
                dtype=bool,
            )
            used = np.array(  # only where the (cleaned) value reached the copy
                [
                    bool(odd[k]) and clean(str(names[k]), "first_name") in texts[k]
                    for k in range(len(texts))
                ],
                dtype=bool,
            )
            v.set(
                used & (v.outcome == 0),
                REVIEW,
                "suspicious_slot_value",
                "first_name does not look like a name",
            )
        return v
