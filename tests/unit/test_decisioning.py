from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from sluice.contracts import Channel, DecisionContext, Offer, OfferCatalog
from sluice.decisioning import decide, load_catalog
from sluice.decisioning.catalog import CatalogSource
from sluice.errors import ConfigError

AT = datetime(2026, 6, 15, 12, tzinfo=UTC)


def offer(offer_id: str, **kw: object) -> Offer:
    base: dict[str, object] = {
        "offer_id": offer_id,
        "name": offer_id,
        "product": "p",
        "value": 10.0,
        "valid_from": date(2026, 1, 1),
        "valid_until": date(2026, 12, 31),
        "url": "https://shop.example.com/x",
        "channels": ["email"],
    }
    base.update(kw)
    return Offer.model_validate(base)


def ctx(**kw: object) -> DecisionContext:
    base: dict[str, object] = {
        "customer_id": "c1",
        "country": "DE",
        "consents": {"email": True},
        "at": AT,
    }
    base.update(kw)
    return DecisionContext.model_validate(base)


def run(
    catalog: OfferCatalog, context: DecisionContext, score: float = 0.5
) -> tuple[str | None, dict[str, str]]:
    d = decide(
        context,
        score,
        catalog,
        decision_id="dec_test0001",
        model_name="m",
        model_version="7",
        now=AT,
    )
    assert d.model_version == "7" and d.catalog == catalog.name
    return d.offer_id, {e.offer_id: e.rule.value for e in d.excluded}


def test_highest_expected_value_wins_with_deterministic_ties() -> None:
    cat = OfferCatalog(
        offers=(
            offer("a", value=10),
            offer("b", value=20),
            offer("c", value=20, priority=1),
            offer("d", value=20, priority=1),
        )
    )
    chosen, excluded = run(cat, ctx())
    assert chosen == "c" and not excluded  # 20 beats 10; priority 1 beats 0; then "c" < "d"
    d = decide(
        ctx(), 0.5, cat, decision_id="dec_test0001", model_name="m", model_version="1", now=AT
    )
    assert [r.offer_id for r in d.ranked] == ["c", "d", "b", "a"]
    assert d.expected_value == pytest.approx(10.0)


@pytest.mark.parametrize(
    ("offer_kw", "context_kw", "score", "rule"),
    [
        ({"valid_until": date(2026, 6, 1)}, {}, 0.5, "validity"),
        ({"valid_from": date(2026, 7, 1)}, {}, 0.5, "validity"),
        ({"countries": ["FR"]}, {}, 0.5, "country"),
        ({"min_score": 0.6}, {}, 0.5, "min_score"),
        ({}, {"held_offers": ["x"]}, 0.5, "already_held"),
        ({"channels": ["sms"]}, {"channels": ["email", "push"]}, 0.5, "channel"),
        ({}, {"consents": {"email": False}}, 0.5, "consent"),
        ({}, {"consents": {}}, 0.5, "consent"),
    ],
)
def test_each_rule_excludes_with_its_reason(
    offer_kw: dict[str, object], context_kw: dict[str, object], score: float, rule: str
) -> None:
    chosen, excluded = run(OfferCatalog(offers=(offer("x", **offer_kw),)), ctx(**context_kw), score)
    assert chosen is None and excluded == {"x": rule}


def test_exclusive_groups_and_consent_free_offers() -> None:
    cat = OfferCatalog(
        offers=(
            offer("boots", exclusive_group="shoes"),
            offer("runners", exclusive_group="shoes"),
            offer("points"),
        )
    )
    _, excluded = run(cat, ctx(held_offers=["boots"]))
    assert excluded == {"boots": "already_held", "runners": "exclusivity"}
    service = OfferCatalog(
        offers=(offer("notice", consent_required=False, channels=["sms", "email"]),)
    )
    chosen, _ = run(service, ctx(consents={"email": False}))
    assert chosen == "notice"


def test_channel_follows_the_offer_preference_among_consented_ones() -> None:
    cat = OfferCatalog(offers=(offer("x", channels=["sms", "email", "push"]),))
    d = decide(
        ctx(consents={"email": True, "push": True, "sms": False}),
        0.5,
        cat,
        decision_id="dec_test0001",
        model_name="m",
        model_version="1",
        now=AT,
    )
    assert d.channel is Channel.EMAIL
    detail = run(cat, ctx(consents={"sms": False}))[1]
    assert detail == {"x": "consent"}
    d = decide(
        ctx(consents={"sms": False}),
        0.5,
        cat,
        decision_id="dec_test0001",
        model_name="m",
        model_version="1",
        now=AT,
    )
    assert "sms: withdrawn" in d.excluded[0].detail and "email: no record" in d.excluded[0].detail


def test_builtin_catalog_and_file_errors_name_the_file_and_field(tmp_path: Path) -> None:
    cat = load_catalog(decision_date=date(2031, 5, 1))
    assert cat.name == "default" and len(cat.offers) >= 3
    with pytest.raises(ConfigError, match="relative to the decision date") as relative:
        load_catalog()
    assert relative.value.field.endswith("valid_from")
    bad = tmp_path / "offers.yaml"
    offer_yaml = (
        "  - offer_id: a\n    name: a\n    product: p\n    value: {value}\n"
        "    valid_from: 2026-01-01\n    valid_until: 2026-12-31\n"
        "    url: https://x.example.com\n    channels: [email]\n"
    )
    bad.write_text("name: x\noffers:\n" + offer_yaml.format(value=-1))
    with pytest.raises(
        ConfigError, match=r"offers\.yaml: offers\.0\.value: Input should be greater than 0"
    ) as info:
        load_catalog(bad)
    assert info.value.field == "offers.0.value"
    with pytest.raises(ConfigError, match="does not exist"):
        load_catalog(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="no built-in catalog"):
        load_catalog("builtin:nope")
    dupes = tmp_path / "dupes.yaml"
    dupes.write_text("name: x\noffers:\n" + offer_yaml.format(value=1) + offer_yaml.format(value=2))
    with pytest.raises(ConfigError, match="duplicate offer_id"):
        load_catalog(dupes)


def test_relative_validity_follows_the_decision_date_and_copy_states_it() -> None:
    source = CatalogSource.read("builtin:default")
    assert source.relative
    for day in (date(2026, 7, 1), date(2031, 2, 27), date(2044, 12, 31)):
        boots = source.on(day).get("spring-boots-20")
        assert boots is not None
        assert boots.valid_from == day and boots.valid_until == day + timedelta(days=90)
        copy = boots.approved_copy(Channel.SMS)
        assert copy is not None and copy.text is not None
        end = boots.valid_until
        assert f"until {end:%B} {end.day}, {end.year}:" in copy.text and "{" not in copy.text
    # A fact slot needs its fact: the loyalty offer has no price.
    points = source.on(date(2030, 1, 1)).get("loyalty-double-points")
    assert points is not None and points.price is None
    with pytest.raises(ValidationError, match=r"\{price\} needs the offer's price"):
        Offer.model_validate(
            {
                **points.model_dump(),
                "fallback_copy": {"email": {"subject": "Now {price}", "body": "b"}},
            }
        )
