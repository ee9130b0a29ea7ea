"""``sluice bench gates``: the whole gate chain on a campaign's worth of drafts.

In one run, on the same messages (catalog copy in ``variants`` phrasings per offer and
channel, personalised with realistic first names, so there are many distinct texts):
(a) the full chain (schema, consent, suppression, injection, PII, claims, brand safety
with MiniLM topics, channel format, confidence) against (b) the compliance gates alone
(schema, consent, suppression), the part any delivery system pays. MiniLM loading is
set-up, not timed. Reports messages/s and the time the gates would add to a
1M-recipient campaign.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

OPENERS = [
    "Built for long days on the trail.",
    "Light, tough and ready when you are.",
    "Your next adventure starts here.",
    "Made to handle mud, rain and rock.",
    "Comfort from the first mile.",
    "Tested on real mountains.",
    "Gear that keeps up with you.",
    "Less weight, more trail.",
    "Step out with confidence.",
    "Weatherproof and ready to go.",
]
CLOSERS = [
    "See you outside.",
    "Happy trails.",
    "Enjoy the view.",
    "Go further this season.",
    "Adventure is calling.",
    "Get out there.",
    "The trail is waiting.",
    "Pack light, go far.",
    "Make it a weekend to remember.",
    "Stay dry out there.",
]


@dataclass(frozen=True)
class GateBench:
    messages: int
    distinct_texts: int
    gate_seconds: float
    gate_msgs_per_s: float
    compliance_seconds: float
    compliance_msgs_per_s: float
    ratio_vs_compliance: float
    seconds_per_1m: float
    """Gate time a 1M-recipient campaign would spend on this machine."""
    outcomes: dict[str, int]


def _messages(n: int, variants: int, seed: int, today: date) -> pa.Table:
    from sluice.contracts.drafts import DraftSource, MessageDraft
    from sluice.decisioning.catalog import load_catalog
    from sluice.generation.slots import fill

    rng = np.random.default_rng(seed)
    names = [
        f"{a}{b}"
        for a in ("Ana", "Ben", "Chloé", "Dan", "Eva", "Finn", "Gia", "Hugo", "Iris", "Jon")
        for b in ("", "a", "ie", "o", "y")
    ] + ["Mary Ann", "Jean-Luc", "O'Brien", "Zoë"]
    catalog = load_catalog(decision_date=today)
    copies = [
        (o, ch, c)
        for o in catalog.offers
        for ch in o.fallback_copy
        if (c := o.approved_copy(ch)) is not None
    ]
    rows: dict[str, list[Any]] = {
        k: []
        for k in (
            "customer_id",
            "channel",
            "email",
            "phone",
            "consent_email",
            "consent_sms",
            "consent_push",
            "time_zone",
            "offer_id",
            "subject",
            "preheader",
            "body",
            "cta",
            "text",
            "first_name",
            "score",
            "expected_value",
            "draft_json",
        )
    }
    drafts: dict[tuple[int, int], str] = {}
    pick_copy = rng.integers(0, len(copies), n)
    pick_variant = rng.integers(0, variants, n)
    pick_name = rng.integers(0, len(names), n)
    for i in range(n):
        offer, channel, copy = copies[pick_copy[i]]
        k = int(pick_variant[i])
        extra = f" {OPENERS[k % len(OPENERS)]} {CLOSERS[(k // len(OPENERS)) % len(CLOSERS)]}"
        name = names[pick_name[i]]
        rows["customer_id"].append(f"c{i:08d}")
        rows["channel"].append(channel.value)
        rows["email"].append(f"c{i}@example.com")
        rows["phone"].append("+15550001111")
        for ch in ("email", "sms", "push"):
            rows[f"consent_{ch}"].append(True)
        rows["time_zone"].append("Europe/Berlin")
        rows["offer_id"].append(offer.offer_id)
        for f in ("subject", "preheader", "cta"):
            rows[f].append(fill(getattr(copy, f), {"first_name": name}))
        rows["body"].append(fill(copy.body + extra, {"first_name": name}) if copy.body else None)
        rows["text"].append(fill(copy.text, {"first_name": name}) if copy.text else None)
        rows["first_name"].append(name)
        key = (int(pick_copy[i]), k)
        if key not in drafts:  # the draft a campaign attaches to each candidate's copy
            drafts[key] = MessageDraft(
                channel=channel,
                offer_id=offer.offer_id,
                subject=copy.subject,
                preheader=copy.preheader,
                body=copy.body + extra if copy.body else None,
                cta=copy.cta,
                text=copy.text,
                source=DraftSource.FIXED,
            ).model_dump_json()
        rows["draft_json"].append(drafts[key])
        rows["score"].append(float(rng.random()))
        rows["expected_value"].append(float(rng.random() * 40))
    return pa.table(rows)


def run_gate_bench(messages: int, variants: int, work: Path) -> GateBench:
    from sluice.contracts.campaign import CampaignSpec
    from sluice.decisioning.catalog import load_catalog
    from sluice.gates.base import OUTCOMES, GateChain, GateContext, MessageBatch
    from sluice.gates.build import build_chain
    from sluice.gates.embedder import shared
    from sluice.gates.text import copy_text
    from sluice.settings import get_settings
    from sluice.store.db import connect
    from sluice.store.ledger import Ledger
    from sluice.store.suppressions import Suppressions

    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    spec = CampaignSpec.model_validate(
        {
            "campaign_id": "bench-gates",
            "name": "bench",
            "audience": {"features": "f.parquet", "customers": "c.parquet"},
            "channels": {
                ch: {"transport": "outbox", "path": str(work)} for ch in ("email", "sms", "push")
            },
            "gates": {
                "frequency_cap": None,
                "quiet_hours": None,
                "brand_safety": {
                    "banned_terms": ["cheap knockoff", "guaranteed results"],
                    "competitors": ["Summit Gear Co", "Ridgeline Outfitters"],
                    "banned_topics": [
                        "gambling, betting and casinos",
                        "weapons and firearms",
                        "politics and elections",
                    ],
                },
                "confidence": {"score_band": [0.48, 0.52]},
            },
        }
    )
    now = get_settings().clock.now()
    table = _messages(messages, variants, seed=5, today=now.date())
    engine = connect(f"sqlite:///{work / 'gates.db'}")
    ctx = GateContext(
        "bench",
        "bench-gates",
        spec.brand,
        now,
        True,
        {"ledger": Ledger(engine), "suppressions": Suppressions(engine), "minilm": shared()},
    )
    full = build_chain(spec, load_catalog(spec.offers, now.date()))
    compliance = GateChain(full.gates[:3])
    batch_size = 10_000

    def timed(chain: GateChain) -> tuple[float, dict[str, int]]:
        counts: dict[str, int] = {}
        started = time.perf_counter()
        for start in range(0, table.num_rows, batch_size):
            result = chain.run(MessageBatch(table.slice(start, batch_size)), ctx)
            for code in result.outcome:
                name = OUTCOMES[int(code)].value
                counts[name] = counts.get(name, 0) + 1
        return time.perf_counter() - started, counts

    comp_s, _ = timed(compliance)
    gate_s, outcomes = timed(full)
    distinct = len(set(copy_text(MessageBatch(table))))
    return GateBench(
        messages=messages,
        distinct_texts=distinct,
        gate_seconds=round(gate_s, 2),
        gate_msgs_per_s=round(messages / gate_s),
        compliance_seconds=round(comp_s, 2),
        compliance_msgs_per_s=round(messages / comp_s),
        ratio_vs_compliance=round(comp_s / gate_s, 3),
        seconds_per_1m=round(gate_s * 1_000_000 / messages, 1),
        outcomes=outcomes,
    )
