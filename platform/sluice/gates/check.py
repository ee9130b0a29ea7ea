"""Checking copy against a spec's content gates before a launch (``sluice gates check``).

Each line of a JSON Lines file is one message: ``offer_id``, ``channel``, the copy fields
(``subject``, ``preheader``, ``body``, ``cta`` for email; ``text`` for SMS and push) and,
optionally, ``slots`` (``{"first_name": "Ana"}``). Declared slots in the copy are filled
as a campaign fills them, and the spec's content gates (injection, PII, claims, brand
safety, channel format) judge every line as they would judge that message in a run. A
line that is not a valid message is reported with its line number, field and reason and
counted as ``invalid``; it never stops the others.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from pydantic import Field, ValidationError

from sluice.contracts._base import Contract
from sluice.contracts.campaign import CampaignSpec
from sluice.contracts.customer import Channel
from sluice.contracts.decisions import OfferCatalog
from sluice.contracts.drafts import DraftSource, MessageDraft
from sluice.gates.base import OUTCOMES, GateChain, GateContext, MessageBatch
from sluice.gates.build import content_gates
from sluice.gates.text import COPY_FIELDS
from sluice.generation.slots import personalise

CHUNK = 1_000


class CopyLine(Contract):
    """One message to check (unknown keys refused)."""

    offer_id: str = Field(min_length=1)
    channel: Channel
    subject: str | None = None
    preheader: str | None = None
    body: str | None = None
    cta: str | None = None
    text: str | None = None
    slots: dict[str, str | None] = Field(default_factory=dict)


@dataclass(frozen=True)
class LineVerdict:
    line: int
    outcome: str
    gate: str = ""
    reason: str = ""
    detail: str = ""


@dataclass
class CheckReport:
    verdicts: list[LineVerdict] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        by_outcome = Counter(v.outcome for v in self.verdicts)
        by_reason = Counter(
            f"{v.gate or 'line'}:{v.reason}" for v in self.verdicts if v.outcome != "pass"
        )
        return {
            "lines": len(self.verdicts),
            "by_outcome": dict(sorted(by_outcome.items())),
            "by_reason": dict(sorted(by_reason.items())),
        }


def _parse(number: int, raw: str) -> CopyLine | LineVerdict:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        return LineVerdict(number, "invalid", "", "not_json", f"line {number}: {exc.msg}")
    try:
        return CopyLine.model_validate(data)
    except ValidationError as exc:
        return _invalid(number, exc)


def _invalid(number: int, exc: ValidationError) -> LineVerdict:
    """A line that is not a valid message: its first error, with the field it names."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "line"
    return LineVerdict(number, "invalid", "", "invalid_field", f"{where}: {first['msg']}")


def _row(number: int, line: CopyLine) -> dict[str, Any]:
    draft = MessageDraft(
        offer_id=line.offer_id,
        channel=line.channel,
        subject=line.subject,
        preheader=line.preheader,
        body=line.body,
        cta=line.cta,
        text=line.text,
        source=DraftSource.FALLBACK,
        template_version="check",
        model_id="none",
        prompt_hash="none",
    )
    filled = personalise(draft, line.slots)
    return {
        "customer_id": f"line-{number}",
        "channel": line.channel.value,
        "offer_id": line.offer_id,
        "first_name": line.slots.get("first_name"),
        **{f: getattr(filled, f) for f in COPY_FIELDS},
        "draft_json": draft.model_dump_json(),
    }


def judge_drafts(
    drafts: Sequence[MessageDraft],
    spec: CampaignSpec,
    catalog: OfferCatalog,
    now: datetime | None = None,
) -> list[LineVerdict]:
    """Each draft judged by the spec's content gates as its recipients' messages will be,
    with ``{first_name}`` filled as for a recipient without a name (the neutral word):
    one verdict per draft, in order (``line`` is the position)."""
    chain = GateChain(content_gates(spec, catalog))
    ctx = GateContext("screen", spec.campaign_id, spec.brand, now or datetime.now(UTC), True)
    rows = []
    for i, draft in enumerate(drafts):
        filled = personalise(draft, {"first_name": None})
        rows.append(
            {
                "customer_id": f"draft-{i}",
                "channel": draft.channel.value,
                "offer_id": draft.offer_id,
                "first_name": None,
                **{f: getattr(filled, f) for f in COPY_FIELDS},
                "draft_json": draft.model_dump_json(),
            }
        )
    if not rows:
        return []
    result = chain.run(MessageBatch(pa.Table.from_pylist(rows)), ctx)
    return [
        LineVerdict(
            i, OUTCOMES[int(result.outcome[i])].value, str(result.gate[i]), str(result.reason[i])
        )
        for i in range(len(rows))
    ]


def check_copy(
    lines: Iterable[str], spec: CampaignSpec, catalog: OfferCatalog, now: datetime | None = None
) -> CheckReport:
    """Every line judged by the spec's content gates (see the module docstring)."""
    chain = GateChain(content_gates(spec, catalog))
    ctx = GateContext("check", spec.campaign_id, spec.brand, now or datetime.now(UTC), True)
    report = CheckReport()
    pending: list[tuple[int, dict[str, Any]]] = []

    def flush() -> None:
        if not pending:
            return
        batch = MessageBatch(pa.Table.from_pylist([r for _, r in pending]))
        result = chain.run(batch, ctx)
        for k, (number, _) in enumerate(pending):
            outcome = OUTCOMES[int(result.outcome[k])].value
            detail = ""
            for v in result.verdicts[k]:
                if v.get("gate") == result.gate[k] and v.get("outcome") != "pass":
                    detail = str(v.get("detail") or "")
            report.verdicts.append(
                LineVerdict(number, outcome, str(result.gate[k]), str(result.reason[k]), detail)
            )
        pending.clear()

    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        parsed = _parse(number, raw)
        if isinstance(parsed, LineVerdict):
            report.verdicts.append(parsed)
            continue
        if catalog.get(parsed.offer_id) is None:
            report.verdicts.append(
                LineVerdict(
                    number, "invalid", "", "unknown_offer", f"offer_id: {parsed.offer_id} unknown"
                )
            )
            continue
        try:
            row = _row(number, parsed)
        except ValidationError as exc:
            report.verdicts.append(_invalid(number, exc))
            continue
        pending.append((number, row))
        if len(pending) >= CHUNK:
            flush()
    flush()
    report.verdicts.sort(key=lambda v: v.line)
    return report
