from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime

import numpy as np
import pyarrow as pa
import pytest
from pydantic import ValidationError

from sluice.contracts import (
    PROPENSITY_V1,
    Channel,
    ChannelConsent,
    CustomerProfile,
    FeatureContract,
    FeatureKind,
    FeatureSpec,
    GateOutcome,
    GateVerdict,
    MessageDraft,
    NullPolicy,
    Offer,
)

SMALL = FeatureContract(
    name="small",
    version="1.2.3",
    features=(
        FeatureSpec(name="amount", kind=FeatureKind.FLOAT, description="d", min=0, max=100),
        FeatureSpec(name="visits", kind=FeatureKind.INT, description="d", min=0, max=10),
        FeatureSpec(
            name="recency", kind=FeatureKind.FLOAT, description="d", nulls=NullPolicy.MISSING
        ),
        FeatureSpec(
            name="tier", kind=FeatureKind.CATEGORY, description="d", categories=("gold", "silver")
        ),
    ),
)


def _table(**cols: list[object]) -> pa.Table:
    base: dict[str, list[object]] = {
        "customer_id": ["a", "b", "c"],
        "amount": [1.5, 2.0, 3.0],
        "visits": [1, 2, 3],
        "recency": [None, 4.0, 5.0],
        "tier": ["gold", "silver", "gold"],
    }
    base.update(cols)
    return pa.table({k: v for k, v in base.items() if v is not None})


def test_valid_batch_becomes_the_encoded_matrix() -> None:
    checked = SMALL.validate_batch(_table())
    assert checked.n_valid == 3 and checked.n_quarantined == 0
    assert checked.ids.to_pylist() == ["a", "b", "c"]
    expected = SMALL.encode_rows(_table().to_pylist())
    np.testing.assert_array_equal(checked.matrix, expected)
    assert math.isnan(checked.matrix[0, 2])  # allowed null reaches the model as missing
    assert checked.matrix[1, 3] == 1.0  # "silver" is category index 1


@pytest.mark.parametrize(
    ("column", "values", "reason"),
    [
        ("amount", [1.0, -2.0, 3.0], "amount: value -2 below minimum 0"),
        ("amount", [1.0, 200.0, 3.0], "amount: value 200 above maximum 100"),
        ("amount", [1.0, float("inf"), 3.0], "amount: value is not finite"),
        ("amount", [1.0, None, 3.0], "amount: null not allowed"),
        ("amount", [1.0, float("nan"), 3.0], "amount: null not allowed"),
        ("amount", ["1.0", "abc", "3"], "amount: 'abc' is not a number"),
        ("visits", [1.0, 2.5, 3.0], "visits: value 2.5 is not an integer"),
        ("tier", ["gold", "bronze", "gold"], "tier: 'bronze' is not an allowed category"),
        ("customer_id", ["a", None, "c"], "customer_id: missing"),
        ("customer_id", ["a", "", "c"], "customer_id: missing"),
        (
            "customer_id",
            ["a", "  ", "c"],
            "customer_id: longer than 128 characters or contains white space or control characters",
        ),
        (
            "customer_id",
            ["a", "b x", "c"],
            "customer_id: longer than 128 characters or contains white space or control characters",
        ),
        (
            "customer_id",
            ["a", "b\x01", "c"],
            "customer_id: longer than 128 characters or contains white space or control characters",
        ),
        (
            "customer_id",
            ["a", "x" * 129, "c"],
            "customer_id: longer than 128 characters or contains white space or control characters",
        ),
    ],
)
def test_each_bad_value_quarantines_its_row_with_the_field_and_reason(
    column: str, values: list[object], reason: str
) -> None:
    checked = SMALL.validate_batch(_table(**{column: values}))
    assert checked.n_valid == 2
    assert checked.rows.tolist() == [0, 2]
    [row] = checked.quarantine.to_pylist()
    assert row["reason"] == reason
    record = json.loads(row["record"])
    assert set(record) == set(_table().column_names)
    assert record["customer_id"] == row["customer_id"]


def test_numeric_strings_are_parsed_not_rejected() -> None:
    checked = SMALL.validate_batch(_table(amount=[" 1.5 ", "2e1", ".5"]))
    assert checked.n_quarantined == 0
    assert checked.matrix[:, 0].tolist() == [1.5, 20.0, 0.5]


def test_missing_column_and_wrong_types_quarantine_every_row_with_all_reasons() -> None:
    table = _table(visits=None, tier=[1, 2, 3])
    checked = SMALL.validate_batch(table)
    assert checked.n_valid == 0
    reasons = checked.quarantine.column("reason").to_pylist()
    assert reasons == ["visits: missing column; tier: expected a category string, got int64"] * 3


def test_non_string_ids_are_refused_as_opaque_ids() -> None:
    checked = SMALL.validate_batch(_table(customer_id=[1, 2, 3]))
    assert checked.n_valid == 0
    assert (
        checked.quarantine.column("reason")[0].as_py()
        == "customer_id: expected an opaque string id, got int64"
    )
    assert checked.quarantine.column("customer_id").to_pylist() == ["1", "2", "3"]


def test_dictionary_and_large_string_columns_are_read() -> None:
    table = _table().set_column(4, "tier", pa.array(["gold", "silver", "gold"]).dictionary_encode())
    table = table.set_column(0, "customer_id", pa.array(["a", "b", "c"], pa.large_string()))
    assert SMALL.validate_batch(table).n_valid == 3


def test_arrow_schema_and_digest() -> None:
    schema = SMALL.arrow_schema()
    assert schema.names == ["customer_id", "amount", "visits", "recency", "tier"]
    assert schema.field("visits").type == pa.int64()
    assert schema.metadata[b"sluice.feature_contract"] == b"small@1.2.3"
    assert SMALL.digest() == FeatureContract.from_json(SMALL.to_json()).digest()
    assert SMALL.digest() != PROPENSITY_V1.digest()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": FeatureKind.CATEGORY}, "needs categories"),
        ({"kind": FeatureKind.FLOAT, "categories": ("a",)}, "category features only"),
        ({"kind": FeatureKind.FLOAT, "min": 2, "max": 1}, "above max"),
        ({"kind": FeatureKind.CATEGORY, "categories": ("a", "a")}, "unique"),
    ],
)
def test_feature_spec_rules(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        FeatureSpec(name="x", description="d", **kwargs)  # type: ignore[arg-type]


def test_contract_rejects_duplicates_and_unknown_fields() -> None:
    spec = SMALL.features[0]
    with pytest.raises(ValidationError, match="duplicate"):
        FeatureContract(name="c", version="1.0.0", features=(spec, spec))
    with pytest.raises(ValidationError, match="extra"):
        FeatureContract.model_validate(
            {"name": "c", "version": "1.0.0", "features": [spec.model_dump()], "owner": "x"}
        )


def test_vector_model_checks_what_batch_validation_checks() -> None:
    Vector = SMALL.vector_model()
    ok = Vector.model_validate({"customer_id": "a", "amount": 1.0, "visits": 2, "tier": "gold"})
    assert ok.model_dump()["recency"] is None
    bad = [
        ({"customer_id": "a", "amount": -1, "visits": 2, "tier": "gold"}, ("amount",)),
        ({"customer_id": "a", "amount": 1, "visits": 2, "tier": "bronze"}, ("tier",)),
        ({"customer_id": "a", "amount": 1, "tier": "gold"}, ("visits",)),
        ({"customer_id": "a", "amount": 1, "visits": 2, "tier": "gold", "typo": 1}, ("typo",)),
        ({"customer_id": "a b", "amount": 1, "visits": 2, "tier": "gold"}, ("customer_id",)),
    ]
    for payload, loc in bad:
        with pytest.raises(ValidationError) as info:
            Vector.model_validate(payload)
        assert info.value.errors()[0]["loc"] == loc


def test_propensity_contract_is_consistent() -> None:
    assert PROPENSITY_V1.key == "propensity@1.0.0"
    assert PROPENSITY_V1.categorical_indices == [len(PROPENSITY_V1.features) - 1]
    schema = PROPENSITY_V1.vector_model().model_json_schema()
    assert schema["additionalProperties"] is False


def _profile(**kw: object) -> CustomerProfile:
    base: dict[str, object] = {
        "customer_id": "c1",
        "email": "ada@example.com",
        "country": "DE",
        "time_zone": "Europe/Berlin",
        "signup_date": date(2024, 1, 1),
    }
    base.update(kw)
    return CustomerProfile.model_validate(base)


def test_customer_profile_rules() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    p = _profile(consents=[ChannelConsent(channel=Channel.EMAIL, granted=False, updated_at=now)])
    assert p.consent_for(Channel.EMAIL) is not None and p.consent_for(Channel.SMS) is None
    for field, value in [
        ("time_zone", "Mars/Olympus"),
        ("email", "nope"),
        ("phone", "0123"),
        ("country", "de"),
    ]:
        with pytest.raises(ValidationError) as info:
            _profile(**{field: value})
        assert info.value.errors()[0]["loc"][0] == field
    twice = [ChannelConsent(channel=Channel.EMAIL, granted=True, updated_at=now)] * 2
    with pytest.raises(ValidationError, match="one record per channel"):
        _profile(consents=twice)
    with pytest.raises(ValidationError, match="timezone"):
        ChannelConsent(channel=Channel.SMS, granted=True, updated_at=datetime(2025, 1, 1))


def test_offer_draft_and_verdict_rules() -> None:
    offer = {
        "offer_id": "spring-20",
        "name": "Spring",
        "product": "Boots",
        "value": 12.5,
        "valid_from": date(2026, 3, 1),
        "valid_until": date(2026, 2, 1),
        "url": "https://shop.example.com/spring",
        "channels": ["email"],
    }
    with pytest.raises(ValidationError, match="valid_until"):
        Offer.model_validate(offer)
    with pytest.raises(ValidationError, match="fallback_copy"):
        Offer.model_validate(
            {**offer, "valid_until": date(2026, 4, 1), "fallback_copy": {"sms": {"text": "hi"}}}
        )
    with pytest.raises(ValidationError, match="subject, body, cta: required for email"):
        MessageDraft(channel=Channel.EMAIL, offer_id="spring-20", source="fixed")
    with pytest.raises(ValidationError, match="text: required for sms"):
        MessageDraft(channel=Channel.SMS, offer_id="spring-20", source="fixed")
    with pytest.raises(ValidationError, match="defer_until"):
        GateVerdict(gate="quiet-hours", outcome=GateOutcome.DEFER, reason_code="quiet_hours")
    assert GateVerdict(gate="consent", outcome=GateOutcome.PASS).reason_code == "ok"


def test_quarantine_records_are_strict_json() -> None:
    checked = SMALL.validate_batch(_table(amount=[1.0, float("inf"), float("nan")]))
    records = [json.loads(r) for r in checked.quarantine.column("record").to_pylist()]
    assert [r["amount"] for r in records] == ["inf", "nan"]
