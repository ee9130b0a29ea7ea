"""``sluice bench llm``, campaign copy: recipients with copy per second, and the share of
LLM drafts that pass every content gate (see :mod:`sluice.bench.llm`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

SPEC = Path("jobs/spring-boots.yaml")
"""The demo campaign: its gate settings judge the drafts."""


def campaign_copy(
    report: Any,
    briefs: list[Any],
    base_url: str,
    model_id: str,
    recipients: int,
    work: Path,
) -> None:
    import numpy as np
    import pyarrow as pa

    from sluice.campaign.copy import attach_copy, copy_key
    from sluice.generation.batch import GenerationConfig, generate_drafts
    from sluice.generation.cache import DraftCache

    started = time.perf_counter()
    drafts, gen = generate_drafts(
        briefs,
        GenerationConfig(base_url=base_url, model_id=model_id, max_in_flight=8),
        DraftCache(work / "drafts.sqlite"),
    )
    report.generation_s = round(time.perf_counter() - started, 1)
    report.generated, report.fallback = gen.generated, gen.fallback
    drafts = _screen(drafts, briefs, gen)
    report.llm_drafts, report.passed, report.pass_share = gen.llm_drafts, gen.passed, gen.pass_share
    report.fallback_reasons = {
        **{k: v for k, v in gen.reasons.items() if k != "ok"},
        **gen.rejected,
    }
    keyed = {
        copy_key(
            "generate",
            b.segment.tier.value,
            b.segment.lifecycle.value,
            b.segment.country,
            b.offer.offer_id,
            b.channel.value,
            b.locale,
            b.variant,
        ): drafts[b.prompt_key].model_dump_json()
        for b in briefs
    }
    rng = np.random.default_rng(3)
    pick = rng.integers(0, len(briefs), recipients)
    rows: dict[str, list[Any]] = {
        k: []
        for k in (
            "tier",
            "lifecycle",
            "country",
            "offer_id",
            "channel",
            "locale",
            "variant",
            "arm",
            "first_name",
        )
    }
    for i in pick:
        b = briefs[int(i)]
        rows["tier"].append(b.segment.tier.value)
        rows["lifecycle"].append(b.segment.lifecycle.value)
        rows["country"].append(b.segment.country)
        rows["offer_id"].append(b.offer.offer_id)
        rows["channel"].append(b.channel.value)
        rows["locale"].append(b.locale)
        rows["variant"].append(b.variant)
        rows["arm"].append("treatment")
        rows["first_name"].append("Ana")
    table = pa.table(rows)
    started = time.perf_counter()
    for s in range(0, recipients, 10_000):
        attach_copy(table.slice(s, 10_000), "generate", keyed)
    report.fanout_s = round(time.perf_counter() - started, 1)
    report.copy_recipients_per_s = round(recipients / (report.generation_s + report.fanout_s))


def _screen(drafts: dict[str, Any], briefs: list[Any], gen: Any) -> dict[str, Any]:
    """The drafts as a campaign would use them: judged by the content gates of the demo
    campaign's spec (``jobs/spring-boots.yaml``), approved copy for those that fail."""
    from sluice.campaign.copy import screen
    from sluice.contracts.campaign import CampaignSpec
    from sluice.decisioning.catalog import load_catalog
    from sluice.settings import get_settings

    raw = yaml.safe_load(SPEC.read_text()) if SPEC.is_file() else {}
    spec = CampaignSpec.model_validate(
        {
            "campaign_id": "bench-llm",
            "name": "bench llm",
            "audience": {"features": "unused", "customers": "unused"},
            "channels": {
                c: {"transport": "outbox", "path": "unused"} for c in ("email", "sms", "push")
            },
            "gates": raw.get("gates", {}),
        }
    )
    catalog = load_catalog(decision_date=get_settings().clock.today())
    return screen(drafts, {b.prompt_key: b for b in briefs}, spec, catalog, gen)
