"""Facts enter generated copy only through slots, written for the recipient's locale, and
the claims gate reads back every one of them (no Ray, no LLM: a scripted client)."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import date, timedelta
from typing import Any

import pytest

from sluice.campaign.copy import screen
from sluice.contracts.briefs import Lifecycle, PropensityTier, SegmentProfile
from sluice.contracts.campaign import CampaignSpec
from sluice.contracts.customer import Channel
from sluice.contracts.drafts import DraftSource
from sluice.contracts.localefmt import long_date, money, percent
from sluice.contracts.offers import FACT_SLOTS, Offer
from sluice.data.geography import COUNTRIES
from sluice.decisioning.catalog import load_catalog
from sluice.gates.claims import Facts, check
from sluice.generation.batch import GenerationReport
from sluice.generation.client import Completion
from sluice.generation.copywriter import Copywriter
from sluice.generation.segments import brief_for
from sluice.generation.templates import copy_slots, output_schema, text_pattern

CATALOG = load_catalog(decision_date=date(2026, 10, 2))
OFFERS = {o.offer_id: o for o in CATALOG.offers}
BOOTS = OFFERS["spring-boots-20"]
JACKET = OFFERS["rain-jacket-25"]
POINTS = OFFERS["loyalty-double-points"]
LOCALES = sorted({c.locale for c in COUNTRIES} | {"xx-YY"})


def brief(offer: Offer, channel: Channel, locale: str = "en-US", variant: str = "a") -> Any:
    profile = SegmentProfile(tier=PropensityTier.HIGH, lifecycle=Lifecycle.ACTIVE, country="US")
    return brief_for(offer, channel, locale, profile, variant)


class Scripted:
    """An LLM client that answers from a script and keeps what it was asked."""

    model_id = "scripted"

    def __init__(self, *answers: dict[str, str]) -> None:
        self.answers = [json.dumps(a) for a in answers]
        self.asked: list[tuple[list[dict[str, str]], dict[str, Any]]] = []

    async def complete(
        self,
        messages: list[dict[str, str]],
        schema: dict[str, Any],
        sampling: dict[str, Any],
        deadline_s: float,
    ) -> Completion:
        self.asked.append((messages, schema))
        return Completion(self.answers.pop(0), 10, 10)


@pytest.mark.parametrize("locale", LOCALES)
def test_every_fact_written_for_a_locale_is_read_back_by_the_claims_gate(locale: str) -> None:
    for offer in CATALOG.offers:
        facts = Facts.of(offer)
        for slot, value in offer.facts(locale).items():
            assert check(f"Now: {value}.", facts) is None, (offer.offer_id, slot, value)
        wrong = [long_date(offer.valid_until + timedelta(days=1), locale)]
        if offer.price is not None:
            wrong.append(money(offer.price + 1, offer.currency, locale))
        if offer.discount_pct is not None:
            wrong.append(percent(offer.discount_pct + 5, locale))
        for value in wrong:
            found = check(f"Now: {value}.", facts)
            assert found is not None and found[0].startswith("claim_"), (locale, value)


def test_facts_are_written_the_locales_way() -> None:
    assert BOOTS.facts("en-US") == {
        "price": "$119.99",
        "was_price": "$149.99",
        "discount": "20%",
        "end_date": "December 31, 2026",
        "offer_url": "https://shop.example.com/boots/trailhead",
    }
    assert JACKET.facts("de-DE")["price"] == "134,25 €"
    assert JACKET.facts("de-DE")["end_date"] == "01.11.2026"
    assert JACKET.facts("de-DE")["discount"] == "25 %"
    assert JACKET.facts("nl-NL")["price"] == "€ 134,25"
    assert BOOTS.facts("en-GB")["price"] == "US$119.99"
    assert BOOTS.facts("en-GB")["end_date"] == "31 December 2026"
    assert BOOTS.facts("fr-FR")["end_date"] == "31/12/2026"
    assert BOOTS.facts("ja-JP")["end_date"] == "2026-12-31"
    assert money(1299, "SEK", "sv-SE") == "1 299,00 SEK"
    assert money(12000, "JPY", "ja-JP") == "¥12,000"
    assert set(POINTS.facts()) == {"end_date", "offer_url"}


def test_the_schema_admits_slots_and_no_literal_fact() -> None:
    slots = copy_slots(BOOTS)
    assert slots == (*FACT_SLOTS, "first_name")
    assert copy_slots(POINTS) == ("end_date", "offer_url", "first_name")
    schema = output_schema(Channel.EMAIL, slots)
    pattern = re.compile(text_pattern(slots))
    assert {p["pattern"] for p in schema["properties"].values()} == {pattern.pattern}
    assert schema["properties"]["subject"]["maxLength"] == 78
    for ok in ("{first_name}, boots {discount} off until {end_date}", "Hi there\nSee: {offer_url}"):
        assert pattern.fullmatch(ok)
    for bad in (
        "Now $119.99",
        "20% off",
        "two for 1",
        "until 12/31",
        "shop.example.com/boots",
        "mail ana@example.com",
        "{last_name}",
        "{price",
        "<b>",
    ):
        assert pattern.fullmatch(bad) is None, bad
    assert re.compile(text_pattern(copy_slots(POINTS))).fullmatch("only {price}") is None
    # An SMS stays in GSM-7: no curly quote or emoji, so never a 70-character segment.
    sms = re.compile(output_schema(Channel.SMS, slots)["properties"]["text"]["pattern"])
    assert sms.fullmatch("{first_name}, boots {discount} off: {offer_url}. Don't wait!")
    for bad in ("Boots \u2019", "Boots \U0001f97e", "Boots\nnow", "Now $5", "{last_name}"):
        assert sms.fullmatch(bad) is None, bad


def test_the_prompt_names_slots_and_holds_no_fact_value() -> None:
    writer = Copywriter(Scripted())
    for offer in CATALOG.offers:
        for channel in offer.fallback_copy:
            for locale in ("en-US", "de-DE"):
                messages, _, _ = writer.prompt(brief(offer, channel, locale))
                text = json.dumps(messages, ensure_ascii=False)
                for value in offer.facts(locale).values():
                    assert value not in text, (offer.offer_id, value)
                # no number at all but the length limits
                assert not re.search(r"\d", re.sub(r"at most \d+ characters", "", text))
                for slot in copy_slots(offer):
                    assert "{" + slot + "}" in text


def test_generated_copy_gets_the_offers_facts_in_the_recipients_locale() -> None:
    client = Scripted(
        {
            "subject": "{first_name}, stay dry for {discount} less",
            "preheader": "Now {price}, was {was_price}",
            "body": "The Stormline jacket is {discount} off until {end_date}: {offer_url}",
            "cta": "See the jacket",
        }
    )
    result = asyncio.run(Copywriter(client).draft(brief(JACKET, Channel.EMAIL, "de-DE")))
    assert result.reason == "ok" and result.draft.source is DraftSource.GENERATED
    assert result.draft.subject == "{first_name}, stay dry for 25 % less"
    assert result.draft.preheader == "Now 134,25 €, was 179,00 €"
    assert result.draft.body == (
        "The Stormline jacket is 25 % off until 01.11.2026: https://shop.example.com/jackets/stormline"
    )
    [(_, schema)] = client.asked
    assert schema == output_schema(Channel.EMAIL, copy_slots(JACKET))


def test_a_literal_fact_or_a_missing_slot_is_invalid_output_even_unconstrained() -> None:
    """A backend that ignored the pattern: the answer is checked against it all the same,
    and an answer that only fits once its slots are filled is refused too."""
    client = Scripted(
        {"text": "Boots now $99 until {end_date}"},
        {"text": "Double points and {price} off until {end_date}"},
        {"text": "Trailhead boots {discount} off " + "x" * 120 + " {offer_url}"},
    )
    result = asyncio.run(Copywriter(client).draft(brief(POINTS, Channel.SMS)))
    assert result.reason == "invalid_output" and result.attempts == 3
    assert result.draft.source is DraftSource.FALLBACK
    assert result.draft.text == (
        "Double loyalty points on every purchase until December 31, 2026: "
        "https://shop.example.com/loyalty"
    )


def test_the_fallback_states_its_dates_for_the_recipients_locale() -> None:
    client = Scripted({"text": "1"}, {"text": "2"}, {"text": "3"})
    result = asyncio.run(Copywriter(client).draft(brief(POINTS, Channel.PUSH, "de-DE")))
    assert result.draft.text == "Double loyalty points on every purchase until 31.12.2026"


def test_screening_puts_approved_copy_in_place_of_a_draft_a_content_gate_fails() -> None:
    spec = CampaignSpec.model_validate(
        {
            "campaign_id": "c",
            "name": "c",
            "audience": {"features": "f.parquet", "customers": "c.parquet"},
            "channels": {"sms": {"transport": "outbox", "path": "out"}},
            "gates": {"brand_safety": {"competitors": ["Acme Outfitters"]}},
        }
    )
    good, bad = brief(BOOTS, Channel.SMS, variant="a"), brief(BOOTS, Channel.SMS, variant="b")
    client = Scripted(
        {"text": "{first_name}, Trailhead boots {discount} off: {offer_url}"},
        {"text": "Better than Acme Outfitters: Trailhead boots {discount} off"},
    )
    writer = Copywriter(client)
    drafts = {b.prompt_key: asyncio.run(writer.draft(b)).draft for b in (good, bad)}
    report = GenerationReport()
    used = screen(drafts, {b.prompt_key: b for b in (good, bad)}, spec, CATALOG, report)
    assert used[good.prompt_key] == drafts[good.prompt_key]
    assert used[bad.prompt_key].source is DraftSource.FALLBACK
    assert used[bad.prompt_key].prompt_hash == drafts[bad.prompt_key].prompt_hash
    assert report.llm_drafts == 2 and report.passed == 1 and report.pass_share == 0.5
    assert report.rejected == {"brand_safety:competitor": 1}


def test_the_batch_processor_asks_again_with_the_next_seed_and_falls_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ray.data.llm path (its engine replaced by a script): rows carry the brief's
    messages, seed and schema; invalid answers are asked again with the next seed; what
    stays invalid, or a processor that fails, falls back with the reason."""
    from sluice.generation import processor as proc

    sms_a, sms_b = brief(BOOTS, Channel.SMS, variant="a"), brief(BOOTS, Channel.SMS, variant="b")
    answers = {
        (sms_a.prompt_key, 1): {"text": "Trailhead boots {discount} off until {end_date}"},
        (sms_b.prompt_key, 1): {"text": "Trailhead boots now $99"},
        (sms_b.prompt_key, 2): {"text": "Trailhead boots now 99 dollars"},
    }
    seen: list[dict[str, Any]] = []

    def run(_processor: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        seen.extend(rows)
        out = []
        for row in reversed(rows):  # in any order
            text = json.dumps(answers.get((row["prompt_key"], row["attempt"]), {"text": "x"}))
            out.append(
                {
                    "prompt_key": row["prompt_key"],
                    "attempt": row["attempt"],
                    "generated_text": text,
                    "num_input_tokens": 40,
                    "num_generated_tokens": 12,
                }
            )
        return out

    monkeypatch.setattr(proc, "_processor", lambda settings: object())
    monkeypatch.setattr(proc, "_run", run)
    answers[(sms_b.prompt_key, 3)] = {"text": "Trailhead boots {discount} off: {offer_url}"}
    answers[(sms_b.prompt_key, 4)] = {"text": "Trailhead boots, {price} until {end_date}"}
    settings = proc.ProcessorSettings(model_id="m", model_source="/m", max_attempts=4)
    ok, second = proc.generate_with_processor([sms_a, sms_b], settings)
    assert ok.reason == "ok" and ok.attempts == 1 and ok.draft.model_id == "m"
    assert ok.draft.text == "Trailhead boots 20% off until December 31, 2026"
    assert ok.draft.prompt_tokens == 40 and ok.draft.completion_tokens == 12
    # The invalid one again, every remaining seed in one run: the first valid one wins.
    assert second.reason == "ok" and second.attempts == 3
    assert second.draft.text == "Trailhead boots 20% off: https://shop.example.com/boots/trailhead"
    assert [(r["prompt_key"], r["attempt"]) for r in seen] == [
        (sms_a.prompt_key, 1),
        (sms_b.prompt_key, 1),
        (sms_b.prompt_key, 2),
        (sms_b.prompt_key, 3),
        (sms_b.prompt_key, 4),
    ]
    assert seen[2]["sampling_params"]["seed"] == seen[1]["sampling_params"]["seed"] + 1
    schema = json.loads(seen[0]["sampling_params"]["structured_outputs"]["json"])
    assert schema == output_schema(Channel.SMS, copy_slots(BOOTS))
    writer = Copywriter(Scripted())
    assert seen[0]["messages"] == writer.prompt(sms_a)[0]

    def broken(settings: Any) -> Any:
        raise RuntimeError("no engine")

    seen.clear()
    answers.clear()
    [failed] = proc.generate_with_processor([sms_b], settings)
    assert failed.reason == "invalid_output" and failed.draft.source is DraftSource.FALLBACK
    assert len(seen) == 4
    monkeypatch.setattr(proc, "_processor", broken)
    results = proc.generate_with_processor([sms_a], settings)
    assert [(r.reason, r.draft.source) for r in results] == [
        ("error: RuntimeError", DraftSource.FALLBACK)
    ]
