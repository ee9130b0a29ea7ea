"""The online store on Feast's SQLite store and a real Redis: materialize, look up by id,
the timestamps' rules, and Feast reading what Sluice wrote."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from tests.conftest import SCORE_CUTOFF
from tests.online_support import online_config

from sluice.contracts import PROPENSITY_V1
from sluice.errors import (
    CustomerNotFoundError,
    FutureFeaturesError,
    InputError,
    StaleFeaturesError,
)
from sluice.online import OnlineFeatures, OnlineStore, OnlineStoreConfig, materialize, view_name
from sluice.online.view import encode_doubles, encode_ints, encode_strings

CUTOFF = datetime(SCORE_CUTOFF.year, SCORE_CUTOFF.month, SCORE_CUTOFF.day, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "redis"])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OnlineStoreConfig]:
    yield from online_config(request.param, tmp_path)


@pytest.fixture
def audience(features_dir: Path, tmp_path: Path) -> Path:
    """2,000 rows of the session's audience (with the build's cutoff in the metadata)."""
    table = pq.read_table(features_dir / "audience.parquet").slice(0, 2_000)
    out = tmp_path / "audience.parquet"
    pq.write_table(table, out)
    return out


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}


def test_materialized_rows_come_back_exactly_with_their_timestamp(
    config: OnlineStoreConfig, audience: Path
) -> None:
    store = OnlineStore(config, PROPENSITY_V1)
    seen: list[tuple[int, int]] = []
    report = materialize(audience, PROPENSITY_V1, store, lambda d, t: seen.append((d, t)), 512)
    assert report.rows == 2_000 and report.quarantined == 0
    assert report.features_at == [CUTOFF.isoformat()] and report.store == config.url
    assert seen[-1] == (2_000, 2_000) and len(seen) == 4  # streamed in batches of 512
    table = pq.read_table(audience)
    expected = {r["customer_id"]: _plain(r) for r in table.slice(0, 300).to_pylist()}
    ids = [*expected, "nobody-here"]
    rows, stamps = store.read(ids)
    assert rows[-1] is None and stamps[-1] is None
    for c, row, ts in zip(ids, rows, stamps, strict=False):
        if c in expected:
            assert ts == CUTOFF
            assert row == {k: v for k, v in expected[c].items() if k != "customer_id"}


def test_feast_reads_what_sluice_wrote(config: OnlineStoreConfig, audience: Path) -> None:
    """Feast's own FeatureStore API finds the view and the values: the layout is Feast's."""
    from feast import FeatureStore

    store = OnlineStore(config, PROPENSITY_V1)
    materialize(audience, PROPENSITY_V1, store)
    first = pq.read_table(audience).slice(0, 3).to_pylist()
    refs = [f"{view_name(PROPENSITY_V1)}:{n}" for n in PROPENSITY_V1.names]
    got = (
        FeatureStore(config=config.repo_config())
        .get_online_features(
            features=refs, entity_rows=[{"customer_id": r["customer_id"]} for r in first]
        )
        .to_dict()
    )
    for name in PROPENSITY_V1.names:
        assert got[name] == [_plain(r)[name] for r in first]


def test_lookup_rules_missing_future_stale(config: OnlineStoreConfig, audience: Path) -> None:
    features = OnlineFeatures(config, PROPENSITY_V1)
    materialize(audience, PROPENSITY_V1, features.store)
    cid = pq.read_table(audience).column("customer_id")[0].as_py()
    fine = features.lookup([cid], CUTOFF + timedelta(hours=1))[0]
    assert fine.error is None and fine.features_at == CUTOFF and not fine.stale

    missing = features.lookup(["ghost-1"], CUTOFF)[0]
    assert isinstance(missing.error, CustomerNotFoundError)
    assert "ghost-1" in missing.error.message and missing.error.status_code == 404

    early = features.lookup([cid], CUTOFF - timedelta(seconds=1))[0]
    assert isinstance(early.error, FutureFeaturesError) and early.row is None

    late = CUTOFF + timedelta(hours=PROPENSITY_V1.max_age_hours, seconds=1)
    stale = features.lookup([cid], late)[0]
    assert isinstance(stale.error, StaleFeaturesError) and stale.error.code == "stale_features"
    used = features.lookup([cid], late, allow_stale=True)[0]
    assert used.error is None and used.stale and used.row is not None


def test_a_later_row_is_never_replaced_by_an_earlier_one(
    config: OnlineStoreConfig, audience: Path, tmp_path: Path
) -> None:
    table = pq.read_table(audience).slice(0, 50)
    store = OnlineStore(config, PROPENSITY_V1)
    t1, t2 = CUTOFF - timedelta(days=1), CUTOFF
    newer = table.append_column("feature_timestamp", pa.array([t2] * 50, pa.timestamp("us", "UTC")))
    pq.write_table(newer, tmp_path / "newer.parquet")
    assert materialize(tmp_path / "newer.parquet", PROPENSITY_V1, store).rows == 50
    older = table.set_column(
        table.schema.get_field_index("tenure_days"), "tenure_days", pa.array([1] * 50, pa.int64())
    ).append_column("feature_timestamp", pa.array([t1] * 50, pa.timestamp("us", "UTC")))
    pq.write_table(older, tmp_path / "older.parquet")
    report = materialize(tmp_path / "older.parquet", PROPENSITY_V1, store)
    assert report.rows == 0 and report.skipped_newer == 50
    rows, stamps = store.read([table.column("customer_id")[0].as_py()])
    assert stamps == [t2] and rows[0] is not None
    assert rows[0]["tenure_days"] == table.column("tenure_days")[0].as_py()


def test_bad_rows_are_quarantined_and_the_rest_written(
    config: OnlineStoreConfig, audience: Path, tmp_path: Path
) -> None:
    table = pq.read_table(audience).slice(0, 20)
    i = table.schema.get_field_index("tenure_days")
    bad = table.set_column(i, "tenure_days", pa.array([-5] + [3] * 19, pa.int64()))
    pq.write_table(bad, tmp_path / "bad.parquet")
    report = materialize(
        tmp_path / "bad.parquet", PROPENSITY_V1, OnlineStore(config, PROPENSITY_V1)
    )
    assert report.rows == 19 and report.quarantined == 1
    assert report.quarantine_file is not None
    reasons = pq.read_table(report.quarantine_file).column("reason").to_pylist()
    assert len(reasons) == 1 and reasons[0].startswith("tenure_days:")


def test_a_table_without_a_feature_timestamp_is_refused(
    config: OnlineStoreConfig, audience: Path, tmp_path: Path
) -> None:
    table = pq.read_table(audience).slice(0, 5).replace_schema_metadata(None)
    pq.write_table(table, tmp_path / "plain.parquet")
    with pytest.raises(InputError) as caught:
        materialize(tmp_path / "plain.parquet", PROPENSITY_V1, OnlineStore(config, PROPENSITY_V1))
    assert caught.value.field == "feature_timestamp"


def test_values_are_encoded_as_feast_encodes_them() -> None:
    from feast.protos.feast.types.Value_pb2 import Value

    doubles = [0.0, -0.0, 1.5, 360.74999999999994, 1e300, None]
    ints = [0, 1, 127, 128, 300, 2**40, -1, None]
    strings = ["US", "", "é中", None]
    for got, expected in (
        (
            encode_doubles(doubles),
            [Value(double_val=v) if v is not None else Value() for v in doubles],
        ),
        (encode_ints(ints), [Value(int64_val=v) if v is not None else Value() for v in ints]),
        (
            encode_strings(strings),
            [Value(string_val=v) if v is not None else Value() for v in strings],
        ),
    ):
        assert got == [e.SerializeToString() for e in expected]


def test_redis_keys_are_feasts(tmp_path: Path) -> None:
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    config = OnlineStoreConfig.from_url("redis://127.0.0.1:6379/0", tmp_path)
    store = OnlineStore(config, PROPENSITY_V1)
    ids = ["c-1", "x" * 128, "é中-7"]
    expected = [
        serialize_entity_key(
            EntityKey(join_keys=["customer_id"], entity_values=[Value(string_val=c)]),
            entity_key_serialization_version=3,
        )
        + b"sluice"
        for c in ids
    ]
    assert store._redis_keys(ids) == expected


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("mysql://x", "online_store_url"),
        ("sqlite:///", "online_store_url"),
        ("redis://h:p/0", "online_store_url"),
    ],
)
def test_bad_urls_name_the_setting(url: str, field: str, tmp_path: Path) -> None:
    from sluice.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        OnlineStoreConfig.from_url(url, tmp_path)
    assert caught.value.field == field and url in caught.value.message


def test_feature_store_yaml_round_trips_without_the_password(tmp_path: Path) -> None:
    config = OnlineStoreConfig.from_url("redis://:s3cret@10.0.0.5:6380/2", tmp_path)
    path = config.write_feature_store_yaml(tmp_path / "repo")
    assert "s3cret" not in path.read_text()
    back = OnlineStoreConfig.from_feature_store_yaml(path)
    assert (back.kind, back.host, back.port, back.db, back.password) == (
        "redis",
        "10.0.0.5",
        6380,
        2,
        None,
    )
    local = OnlineStoreConfig.from_url(None, tmp_path)
    again = OnlineStoreConfig.from_feature_store_yaml(
        local.write_feature_store_yaml(tmp_path / "l")
    )
    assert again.path == local.path and again.kind == "sqlite"


def test_an_empty_store_knows_no_customer(config: OnlineStoreConfig) -> None:
    """Nothing materialized yet (no SQLite table, no Redis hash): every id is unknown."""
    found = OnlineFeatures(config, PROPENSITY_V1).lookup(["c-1", "c-2"], CUTOFF)
    assert [type(f.error) for f in found] == [CustomerNotFoundError, CustomerNotFoundError]


def test_an_id_twice_in_one_table_keeps_its_last_row(
    config: OnlineStoreConfig, audience: Path
) -> None:
    """Rows go to Redis in chunks of 5,000 sent over two connections at once: a customer
    twice in one write (here in different chunks) keeps its last row, as if the rows were
    written one after another."""
    base = pq.read_table(audience)
    ids = base.column("customer_id")
    copies = [
        base.set_column(0, "customer_id", pc.binary_join_element_wise(ids, f"-{k}", ""))
        for k in range(3)
    ]
    table = pa.concat_tables(copies)  # 6,000 distinct ids
    first = table.column("customer_id")[0].as_py()
    tenure = table.schema.get_field_index("tenure_days")
    again = table.slice(0, 1).set_column(tenure, "tenure_days", pa.array([4321], pa.int64()))
    store = OnlineStore(config, PROPENSITY_V1)
    store.prepare()
    written = store.write(pa.concat_tables([table, again]), CUTOFF)
    # Redis writes each customer once; Feast's SQLite writer upserts both rows in order.
    assert written == table.num_rows + (config.kind == "sqlite")
    rows, stamps = store.read([first])
    assert stamps == [CUTOFF] and rows[0] is not None and rows[0]["tenure_days"] == 4321
