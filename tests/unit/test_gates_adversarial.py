"""The content gates against generated attacks, and against ordinary copy.

Attacks (injection, links, invented claims, personal data, banned terms) are combined with
every disguise the gates claim to undo: look-alike letters drawn from Unicode's own
confusables data (through ICU, not a hand-kept list), invisible characters, TAG-character
smuggling, bidi overrides, combining marks, letter spacing, leetspeak, full-width forms
and IDN hosts. Each is placed in a customer field (the first-name slot), in an offer's
approved text and in generated copy, and checked the way ``sluice gates check`` checks a
launch: every one must be failed or sent to review. Ordinary copy in the catalog's
languages (accents, non-Latin names, local price and date formats) must pass.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import date
from functools import cache
from pathlib import Path

import icu
import pytest

from sluice.contracts.campaign import CampaignSpec
from sluice.decisioning.catalog import load_catalog
from sluice.gates.check import CheckReport, check_copy

DATA = Path(__file__).parent / "data"
CATALOG = load_catalog(decision_date=date(2026, 10, 2))
BOOTS = next(o for o in CATALOG.offers if o.offer_id == "spring-boots-20")
JACKET = next(o for o in CATALOG.offers if o.offer_id == "rain-jacket-25")
SPEC = CampaignSpec.model_validate(
    {
        "campaign_id": "adversarial",
        "name": "adversarial",
        "audience": {"features": "f.parquet", "customers": "c.parquet"},
        "channels": {"email": {"transport": "outbox", "path": "out"}},
        "gates": {
            "frequency_cap": None,
            "quiet_hours": None,
            "brand_safety": {"banned_terms": ["cheap knockoff"], "competitors": ["Summit Gear"]},
        },
    }
)


@cache
def lookalikes() -> dict[str, list[str]]:
    """For each ASCII letter, the non-ASCII letters whose UTS #39 skeleton is that letter
    (ICU's confusables data), from the scripts attackers use."""
    spoof = icu.SpoofChecker()
    found: dict[str, list[str]] = {}
    for cp in [*range(0x0370, 0x0600), *range(0x13A0, 0x13F6), *range(0x1D400, 0x1D7FF)]:
        ch = chr(cp)
        if not ch.isalpha():
            continue
        sk = str(spoof.getSkeleton(0, ch))
        if len(sk) == 1 and sk.isascii() and sk.isalpha():
            found.setdefault(sk.lower(), []).append(ch)
    return found


def confusable(s: str, rng: random.Random) -> str:
    table = lookalikes()
    return "".join(
        rng.choice(table[c.lower()]) if c.lower() in table and rng.random() < 0.6 else c for c in s
    )


def interleave(s: str, junk: str) -> str:
    return junk.join(s)


def tags(s: str) -> str:
    """Benign copy that carries ``s`` invisibly, in TAG characters."""
    return "Trail boots for the weekend. " + "".join(chr(0xE0000 + ord(c)) for c in s)


OBFUSCATIONS: dict[str, Callable[[str, random.Random], str]] = {
    "plain": lambda s, r: s,
    "confusables": confusable,
    "zero_width": lambda s, r: interleave(s, "\u200b"),
    "soft_hyphen_joiner": lambda s, r: interleave(s, r.choice(["\u00ad", "\u2060", "\u200d"])),
    "variation_selectors": lambda s, r: interleave(s, "\ufe0f"),
    "combining_marks": lambda s, r: "".join(c + "\u0301" if c.isalpha() else c for c in s),
    "bidi_override": lambda s, r: "\u202e" + s[::-1] + "\u202c",
    "tag_smuggling": lambda s, r: tags(s),
    "fullwidth": lambda s, r: "".join(
        chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else "\u3000" if c == " " else c for c in s
    ),
    "spacing": lambda s, r: " ".join(s.replace(" ", "  ")),
    "leetspeak": lambda s, r: s.translate(str.maketrans("aeiost", "4310$7")),
    "upper_mixed": lambda s, r: "".join(c.upper() if i % 2 else c for i, c in enumerate(s)),
}
INJECTIONS = [s for s in (DATA / "injection_base.txt").read_text().splitlines() if s.strip()][::3]
LINKS = [
    "Shop at https://shop.exаmple.com/boots",  # Cyrillic а
    "Boots at shop.examp1e.com/boots",
    "Boots at evil-shop.de/boots",
    "Boots at shop.example.com.evil.de/boots",
    "Boots at https://xn--shop-example-xyz.com/boots",
    "Boots at https://shop.ехаmple.com/boots",  # Cyrillic е and х
    "Details: 10.0.0.5/admin",
    "Boots at bit.ly/boots",
    "Boots at https://ѕһор.example.com.attacker.io/boots",
]
CLAIMS = ["Trail boots now 70% off", "Trail boots only $5", "Offer ends 2027-01-15"]
PII = ["Write to jane.doe@example.com", "Call 020 7946 0958", "Card 4111 1111 1111 1111"]
BANNED = ["Not a cheap knockoff like Summit Gear"]
KINDS = {"injection": INJECTIONS, "link": LINKS, "claim": CLAIMS, "pii": PII, "banned": BANNED}
# Disguises a kind's attacks must survive (every one for text; what applies to the rest).
APPLIES = {
    "injection": list(OBFUSCATIONS),
    "banned": list(OBFUSCATIONS),
    "link": ["plain", "zero_width", "variation_selectors", "fullwidth", "bidi_override"],
    "claim": ["plain", "zero_width", "fullwidth", "soft_hyphen_joiner", "bidi_override"],
    "pii": ["plain", "zero_width", "fullwidth", "soft_hyphen_joiner", "bidi_override"],
}


def attacks() -> list[tuple[str, str, str]]:
    rng = random.Random(39)
    out = []
    for kind, strings in KINDS.items():
        for s in strings:
            for name in APPLIES[kind]:
                out.append((kind, name, OBFUSCATIONS[name](s, rng)))
    return out


def lines(placement: str, texts: list[str]) -> list[str]:
    base = "Hi {first_name}, the Trailhead boots are 20% off until December 31."
    rows = []
    for t in texts:
        if placement == "customer_field":
            row = {"text": base, "slots": {"first_name": t}}
        elif placement == "offer_text":
            row = {"text": f"{base}\n{t}", "slots": {"first_name": "Ana"}}
        else:  # generated copy: the model's words in the subject and body of an email
            row = {
                "channel": "email",
                "subject": "Your trail boots",
                "body": f"{t}\nSee you on the trail.",
                "cta": "Shop now",
                "slots": {"first_name": "Ana"},
            }
        rows.append(json.dumps({"offer_id": BOOTS.offer_id, "channel": "sms", **row}))
    return rows


@pytest.mark.parametrize("placement", ["customer_field", "offer_text", "generated_copy"])
def test_every_disguised_attack_is_failed_or_reviewed(placement: str) -> None:
    cases = attacks()
    assert len(cases) >= 300
    report = check_copy(lines(placement, [t for _, _, t in cases]), SPEC, CATALOG)
    through = [
        (kind, name, text)
        for (kind, name, text), v in zip(cases, report.verdicts, strict=True)
        if v.outcome not in ("fail", "review")
    ]
    assert not through, f"{len(through)} of {len(cases)} got through: {through[:8]}"


def test_the_lookalike_table_comes_from_unicode_data() -> None:
    table = lookalikes()
    assert {"a", "e", "o", "i", "p", "c"} <= table.keys()
    assert "а" in table["a"] and "օ" in table["o"]  # Cyrillic a, Armenian o


def _ordinary() -> list[dict[str, object]]:
    boots, jacket = BOOTS, JACKET
    end_b, end_j = boots.valid_until, jacket.valid_until
    names = [
        "Zoë",
        "José",
        "Björn",
        "François",
        "Łukasz",
        "Øyvind",
        "Siobhán",
        "Nguyễn Văn An",
        "María José",
        "O'Brien",
        "Jean-Luc",
        "さくら",
        "Дмитрий",
        "Αλέξανδρος",
        "张伟",
        "김민준",
        "Ana",
        "Priya",
        "Søren",
        "Chloé",
        "Ümit",
        "Íñigo",
        "Mårten",
        "Renée",
        "Kōji",
        "D'Arcy",
    ]
    texts = [
        (
            "en",
            f"Hi {{first_name}}, the Trailhead boots are 20% off: ${boots.price} until "
            f"{end_b:%B} {end_b.day}. {boots.url}",
        ),
        ("en", f"{{first_name}}, trail season is here. Trailhead boots, now ${boots.price}."),
        ("en", "Your next hike starts here: waterproof leather, grippy soles, 20% off."),
        ("en", f"Save 20% on Trailhead boots through {end_b:%d %b %Y}. Free returns."),
        ("en", f"Stay dry, {{first_name}}: the Stormline jacket is 25% off, now €{jacket.price}."),
        ("en", f"Last days! Stormline jacket at {jacket.price} EUR until {end_j:%B} {end_j.day}."),
        ("en", "New colours just landed. Find your fit in store or online."),
        (
            "de",
            f"Hallo {{first_name}}, die Trailhead-Stiefel gibt es jetzt 20 % günstiger: "
            f"{boots.price:.2f} $ bis {end_b:%d.%m.%Y}.".replace(".99 $", ",99 $"),
        ),
        ("de", "Wasserdicht, leicht und bequem – bereit für jeden Weg."),
        (
            "de",
            f"Bleib trocken, {{first_name}}: Stormline-Jacke 25 % reduziert, nur "
            f"{str(jacket.price).replace('.', ',')} €.",
        ),
        (
            "fr",
            f"Bonjour {{first_name}}, les chaussures Trailhead à -20 % jusqu'au "
            f"{end_b:%d/%m/%Y}. Profitez-en !",
        ),
        ("fr", "Des chaussures légères, imperméables et prêtes pour l'aventure."),
        ("fr", f"Veste Stormline : -25 %, maintenant {str(jacket.price).replace('.', ',')} €."),
        (
            "es",
            f"¡Hola {{first_name}}! Botas Trailhead con un 20 % de descuento, ahora "
            f"{boots.price} USD.",
        ),
        ("es", "Cómodas, resistentes y listas para la montaña. ¿Te las pruebas?"),
        (
            "it",
            f"Ciao {{first_name}}, scarponi Trailhead scontati del 20% fino al {end_b:%d/%m/%Y}.",
        ),
        ("it", "Leggeri, impermeabili e pronti per ogni sentiero."),
        ("nl", f"Hoi {{first_name}}, Trailhead-schoenen nu 20% korting: ${boots.price}."),
        ("nl", "Droge voeten, ook als het regent. Bekijk de collectie."),
        ("sv", f"Hej {{first_name}}! Trailhead-kängor med 20 % rabatt till {end_b:%Y-%m-%d}."),
        ("sv", "Lätta, vattentäta och redo för fjället."),
        ("pt", f"Olá {{first_name}}, botas Trailhead com 20% de desconto: US$ {boots.price}."),
        ("pt", "Conforto para todas as trilhas. Aproveite enquanto durar."),
        ("ja", f"{{first_name}}さん、トレイルヘッドブーツが20%オフ。{end_b:%Y-%m-%d}まで。"),
        ("ja", "防水・軽量のブーツで、週末のハイキングを楽しもう。"),
    ]
    out = []
    for k, (_, text) in enumerate(texts):
        for name in names[k % 5 :: 5]:
            offer = jacket if "Stormline" in text else boots
            out.append(
                {
                    "offer_id": offer.offer_id,
                    "channel": "sms",
                    "text": text,
                    "slots": {"first_name": name},
                }
            )
    return out


def test_ordinary_copy_in_the_catalogs_languages_passes() -> None:
    corpus = _ordinary()
    assert len(corpus) >= 100
    report: CheckReport = check_copy([json.dumps(c) for c in corpus], SPEC, CATALOG)
    passed = [v for v in report.verdicts if v.outcome == "pass"]
    failed = [
        (corpus[v.line - 1]["text"], corpus[v.line - 1]["slots"], v.reason, v.detail)
        for v in report.verdicts
        if v.outcome != "pass"
    ]
    assert len(passed) / len(corpus) >= 0.99, failed[:10]
