"""Copy for the candidates: one draft per copy key, personalised per recipient.

``fixed`` campaigns use each offer's pre-approved copy (key: offer x channel);
``generate`` campaigns draft one copy per prompt key with the LLM (cached across runs,
with the approved copy as fallback). Every LLM draft is judged by the spec's content gates
before it is used (:func:`screen`): one that fails or needs review gives way to the
approved copy, and the report says which gate and why. Pass 2 of the run attaches the
draft to every candidate and fills the declared slots from the recipient's profile; the
coordinator then judges every message by every gate.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa

from sluice.channels.netguard import Guard
from sluice.contracts.briefs import Brief, Lifecycle, PropensityTier, SegmentProfile
from sluice.contracts.campaign import CampaignSpec
from sluice.contracts.customer import Channel
from sluice.contracts.decisions import OfferCatalog
from sluice.contracts.drafts import DraftSource, MessageDraft
from sluice.contracts.localefmt import DEFAULT_LOCALE
from sluice.errors import ConfigError
from sluice.gates.check import judge_drafts
from sluice.generation.batch import GenerationConfig, GenerationReport, generate_drafts
from sluice.generation.cache import DraftCache
from sluice.generation.client import LLM_URL_FIELD
from sluice.generation.copywriter import fallback_draft
from sluice.generation.processor import ProcessorSettings
from sluice.generation.segments import brief_for
from sluice.generation.slots import personalise, row_slots

COPY_FIELDS = ("subject", "preheader", "body", "cta", "text")


def copy_key(
    mode: str,
    tier: str,
    lifecycle: str,
    country: str,
    offer_id: str,
    channel: str,
    locale: str,
    variant: str,
) -> str:
    if mode == "fixed":
        return f"{offer_id}|{channel}"
    return f"{tier}-{lifecycle}-{country}|{offer_id}|{channel}|{locale}|{variant}"


def fixed_draft(
    catalog: OfferCatalog, offer_id: str, channel: str, locale: str = DEFAULT_LOCALE
) -> MessageDraft:
    """The offer's approved copy for ``channel``, its fact slots written for ``locale``
    (the default in ``fixed`` mode, whose copy keys hold no locale)."""
    offer = catalog.get(offer_id)
    copy = offer.approved_copy(Channel(channel), locale) if offer else None
    if offer is None or copy is None:
        raise ConfigError(f"offers: {offer_id} has no approved copy for {channel}", field="offers")
    return MessageDraft(
        channel=Channel(channel), offer_id=offer_id, source=DraftSource.FIXED, **copy.model_dump()
    )


def drafts_for(
    keys: Mapping[tuple[str, ...], int],
    spec: CampaignSpec,
    catalog: OfferCatalog,
    cache: DraftCache,
    batch_home: Path | None = None,
) -> tuple[dict[str, MessageDraft], GenerationReport | None]:
    """A draft per copy key among the candidates' ``keys`` (KEY_COLUMNS tuples, with how
    many candidates each has). With ``copy.max_prompts``, only the most frequent keys are
    generated (``cache`` keeps what was generated before); the others get the offer's
    approved copy. ``batch_home``: the caller is a batch job (a campaign run) with this
    Sluice home, so ``copy.processor_config`` may generate through ``ray.data.llm``."""
    mode = spec.copy_.mode
    if mode == "fixed":
        return {copy_key(mode, *k): fixed_draft(catalog, k[3], k[4]) for k in keys}, None
    ranked = sorted(keys, key=lambda k: (-keys[k], k))
    budget = len(ranked) if spec.copy_.max_prompts is None else spec.copy_.max_prompts
    fixed = {copy_key(mode, *k): fixed_draft(catalog, k[3], k[4], k[5]) for k in ranked[budget:]}
    chosen = ranked[:budget]
    url = spec.copy_.base_url()
    if not url:
        raise ConfigError(
            f"copy.llm_url: set {spec.copy_.llm_url_env} or copy.llm_url for generate mode",
            field="copy.llm_url",
        )
    briefs = {}
    for tier_, life, country, offer_id, channel, locale, variant in chosen:
        offer = catalog.get(offer_id)
        assert offer is not None
        brief = brief_for(
            offer,
            Channel(channel),
            locale,
            SegmentProfile(tier=PropensityTier(tier_), lifecycle=Lifecycle(life), country=country),
            variant,
            spec.copy_.voice,
        )
        briefs[copy_key(mode, tier_, life, country, offer_id, channel, locale, variant)] = brief
    config = GenerationConfig(
        base_url=url,
        model_id=spec.copy_.model_id,
        template=spec.copy_.template,
        max_in_flight=spec.copy_.max_in_flight,
        deadline_s=spec.copy_.deadline_s,
        egress=tuple(spec.copy_.allow_hosts),
        api_key_env=spec.copy_.api_key_env,
        processor=_processor(spec, batch_home),
        processor_min_prompts=spec.copy_.processor_min_prompts,
    )
    if not briefs:
        return fixed, None
    # The egress guard vets the URL now (a refused host fails the run before any call) and
    # again on every connection the LLM client opens (``egress``).
    Guard(LLM_URL_FIELD, spec.copy_.allow_hosts).check_url(url)
    by_prompt, report = generate_drafts(list(briefs.values()), config, cache)
    by_prompt = screen(by_prompt, {b.prompt_key: b for b in briefs.values()}, spec, catalog, report)
    return {**fixed, **{key: by_prompt[b.prompt_key] for key, b in briefs.items()}}, report


def _processor(spec: CampaignSpec, home: Path | None) -> ProcessorSettings | None:
    path = spec.copy_.processor_config
    if path is None or home is None:
        return None
    return ProcessorSettings.from_serve_config(
        path, home, model_id=spec.copy_.model_id, template=spec.copy_.template
    )


def screen(
    drafts: Mapping[str, MessageDraft],
    briefs: Mapping[str, Brief],
    spec: CampaignSpec,
    catalog: OfferCatalog,
    report: GenerationReport,
) -> dict[str, MessageDraft]:
    """``drafts`` (by prompt key) with every LLM draft that a content gate of ``spec``
    fails or sends to review replaced by the brief's approved copy; ``report`` counts the
    LLM drafts judged, those that passed, and the others by ``gate:reason``."""
    llm = [(key, d) for key, d in drafts.items() if d.source is DraftSource.GENERATED]
    out = dict(drafts)
    rejected: Counter[str] = Counter()
    for (key, draft), verdict in zip(
        llm, judge_drafts([d for _, d in llm], spec, catalog), strict=True
    ):
        if verdict.outcome == "pass":
            continue
        rejected[f"{verdict.gate}:{verdict.reason}"] += 1
        out[key] = fallback_draft(briefs[key], draft.template_version, draft.prompt_hash)
    report.llm_drafts = len(llm)
    report.rejected = dict(rejected)
    report.passed = len(llm) - sum(rejected.values())
    return out


def draft_id(draft: MessageDraft) -> str:
    return hashlib.sha256(draft.model_dump_json().encode()).hexdigest()[:40]


def attach_copy(batch: pa.Table, mode: str, drafts: dict[str, str]) -> pa.Table:
    """Pass-2 step: the draft of each candidate's copy key, with slots filled (a journey
    message's ``entry.*`` slots from its ``entry`` column)."""
    keyed = ("arm", "offer_id", "channel", "tier", "lifecycle", "country", "locale", "variant")
    slotted = ["first_name", *(["entry"] if "entry" in batch.column_names else [])]
    rows = batch.select([*keyed, *slotted]).to_pylist()
    parsed = {k: MessageDraft.model_validate_json(v) for k, v in drafts.items()}
    ids = {k: draft_id(d) for k, d in parsed.items()}
    out: dict[str, list[object]] = {
        f: []
        for f in (
            *COPY_FIELDS,
            "copy_source",
            "template_version",
            "prompt_hash",
            "llm_model_id",
            "draft_id",
            "draft_json",
        )
    }
    for r in rows:
        key = draft = None
        if r["arm"] != "holdout" and r["offer_id"] and r["channel"]:
            key = copy_key(
                mode,
                r["tier"],
                r["lifecycle"],
                r["country"],
                r["offer_id"],
                r["channel"],
                r["locale"],
                r["variant"],
            )
            draft = parsed.get(key)
        if key is None or draft is None:
            for f in out:
                out[f].append(None)
            continue
        filled = personalise(draft, row_slots(r["first_name"], r.get("entry")))
        for f in COPY_FIELDS:
            out[f].append(getattr(filled, f))
        out["copy_source"].append(draft.source.value)
        out["template_version"].append(draft.template_version)
        out["prompt_hash"].append(draft.prompt_hash)
        out["llm_model_id"].append(draft.model_id)
        out["draft_id"].append(ids[key])
        out["draft_json"].append(drafts[key])
    for name, values in out.items():
        batch = batch.append_column(name, pa.array(values, pa.string()))
    return batch


__all__ = ["attach_copy", "copy_key", "draft_id", "drafts_for", "fixed_draft", "screen"]
