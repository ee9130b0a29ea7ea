"""Channel format: what each channel can carry.

SMS: text in the GSM 03.38 alphabet costs 7 bits a character (160 in one segment, 153
per segment when concatenated; the extension characters count twice); anything else
needs UCS-2 (70, then 67 per segment, counted in UTF-16 units). Too many segments, or
UCS-2 where the campaign forbids it, fails. Email: subject and preheader lengths.
Push: text length.
"""

from __future__ import annotations

from sluice.gates.base import FAIL, GateContext, MessageBatch, Verdicts
from sluice.gates.text import Finding, apply_findings

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")


def sms_encoding(text: str) -> tuple[str, int]:
    """("GSM-7" or "UCS-2", number of segments) for an SMS body."""
    if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text):
        units = sum(2 if c in GSM7_EXTENSION else 1 for c in text)
        single, multi, encoding = 160, 153, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, multi, encoding = 70, 67, "UCS-2"
    if units <= single:
        return encoding, 1
    return encoding, -(-units // multi)


class ChannelFormatGate:
    name = "channel_format"

    def __init__(
        self,
        sms_max_segments: int,
        sms_allow_ucs2: bool,
        subject_max: int,
        preheader_max: int,
        push_max: int,
    ) -> None:
        self.sms_max_segments = sms_max_segments
        self.sms_allow_ucs2 = sms_allow_ucs2
        self.subject_max, self.preheader_max, self.push_max = subject_max, preheader_max, push_max

    def _sms(self, text: str) -> Finding:
        encoding, segments = sms_encoding(text)
        if encoding == "UCS-2" and not self.sms_allow_ucs2:
            return "sms_charset", "text needs UCS-2 (characters outside GSM-7)"
        if segments > self.sms_max_segments:
            return (
                "sms_too_long",
                f"{segments} {encoding} segments, at most {self.sms_max_segments}",
            )
        return None

    def _row(self, channel: str, subject: object, preheader: object, text: object) -> Finding:
        if channel == "sms" and isinstance(text, str):
            return self._sms(text)
        if channel == "email":
            if isinstance(subject, str) and len(subject) > self.subject_max:
                return "subject_too_long", f"subject {len(subject)} > {self.subject_max} chars"
            if isinstance(preheader, str) and len(preheader) > self.preheader_max:
                return (
                    "preheader_too_long",
                    f"preheader {len(preheader)} > {self.preheader_max} chars",
                )
        if channel == "push" and isinstance(text, str) and len(text) > self.push_max:
            return "push_too_long", f"text {len(text)} > {self.push_max} chars"
        return None

    def evaluate(self, batch: MessageBatch, ctx: GateContext) -> Verdicts:
        v = Verdicts.passing(self.name, len(batch))
        n = len(batch)
        none = [None] * n
        cols = [batch.col(f) if batch.has(f) else none for f in ("subject", "preheader", "text")]
        channel = batch.col("channel")
        memo: dict[tuple[object, ...], Finding] = {}
        findings = []
        for i in range(n):
            key = (channel[i], cols[0][i], cols[1][i], cols[2][i])
            if key not in memo:
                memo[key] = self._row(str(channel[i]), *key[1:])
            findings.append(memo[key])
        apply_findings(v, findings, FAIL)
        return v
