"""``sluice bench materialize``: a feature table of N rows into the online store.

A table of ``rows`` valid rows under the propensity contract (random values within its
ranges, 5% of the nullable ones null) is written to Parquet with a feature cutoff, then
materialized exactly as ``sluice features materialize`` does (read in batches, validated,
written with its timestamp). The baseline, in the same run, is Feast's own Redis writer
(``RedisOnlineStore.online_write_batch`` with ``ValueProto`` objects) on the first
``baseline_rows`` of the same rows. The rows go under a Feast project of the benchmark's
own, whose keys are deleted afterwards.
"""

from __future__ import annotations

import shutil
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sluice.contracts.feature_contract import FeatureContract, FeatureKind, NullPolicy
from sluice.online import OnlineStore, OnlineStoreConfig, materialize


@dataclass(frozen=True)
class MaterializeBench:
    rows: int
    rows_per_s: float
    seconds: float
    store: str
    feast_rows: int
    feast_rows_per_s: float
    ratio: float
    """Sluice's rows/s over Feast's own writer's."""


def synthetic_table(contract: FeatureContract, rows: int, seed: int = 5) -> pa.Table:
    """``rows`` valid feature rows of ``contract``, with the build cutoff in the metadata."""
    rng = np.random.default_rng(seed)
    columns: dict[str, pa.Array] = {
        contract.id_column: pa.array([f"bench-{i:09d}" for i in range(rows)], pa.string())
    }
    for spec in contract.features:
        nulls = rng.random(rows) < 0.05 if spec.nulls is NullPolicy.MISSING else None
        if spec.kind is FeatureKind.CATEGORY:
            picks = np.array(spec.categories, dtype=object)[
                rng.integers(0, len(spec.categories), rows)
            ]
            columns[spec.name] = pa.array(picks, pa.string(), mask=nulls)
            continue
        low, high = spec.min or 0.0, min(spec.max or 1_000.0, 1_000.0)
        values = rng.uniform(low, high, rows)
        if spec.kind is FeatureKind.INT:
            columns[spec.name] = pa.array(values.astype(np.int64), pa.int64(), mask=nulls)
        else:
            columns[spec.name] = pa.array(values, pa.float64(), mask=nulls)
    table = pa.table(columns)
    today = datetime.now(UTC).date().isoformat()
    return table.replace_schema_metadata({b"sluice.cutoff": today.encode()})


def _feast_baseline(store: OnlineStore, table: pa.Table) -> float:
    """Feast's own Redis writer on ``table``: rows/s."""
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    from sluice.online.view import encoder

    contract = store.contract
    started = time.perf_counter()
    columns = {
        f.name: [Value.FromString(b) for b in encoder(f.kind)(table.column(f.name).to_pylist())]
        for f in contract.features
    }
    stamp = datetime.now(UTC)
    data = [
        (
            EntityKey(join_keys=[contract.id_column], entity_values=[Value(string_val=c)]),
            {n: columns[n][i] for n in contract.names},
            stamp,
            None,
        )
        for i, c in enumerate(table.column(contract.id_column).to_pylist())
    ]
    store._store.online_write_batch(store.repo, store.view, data, None)
    return float(table.num_rows / (time.perf_counter() - started))


def run_materialize_bench(
    rows: int, url: str, work: Path, baseline_rows: int = 50_000
) -> MaterializeBench:
    import redis

    from sluice.contracts.propensity import PROPENSITY_V1

    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    table = synthetic_table(PROPENSITY_V1, rows)
    pq.write_table(table, work / "features.parquet", row_group_size=65_536)
    project = f"bench_{uuid.uuid4().hex[:12]}"
    config = OnlineStoreConfig.from_url(url, work / "home", field="online_store")
    config = config.model_copy(update={"project": project})
    store = OnlineStore(config, PROPENSITY_V1)
    try:
        report = materialize(work / "features.parquet", PROPENSITY_V1, store)
        baseline = OnlineStore(
            config.model_copy(update={"project": f"{project}_feast"}), PROPENSITY_V1
        )
        feast_rps = _feast_baseline(baseline, table.slice(0, min(baseline_rows, rows)))
    finally:
        if config.kind == "redis":
            client = redis.Redis(
                host=config.host or "127.0.0.1",
                port=config.port,
                db=config.db,
                password=config.password,
            )
            for suffix in (project, f"{project}_feast"):
                keys = list(client.scan_iter(match=f"*{suffix}", count=10_000))
                for i in range(0, len(keys), 5_000):
                    client.delete(*keys[i : i + 5_000])
            client.close()
    return MaterializeBench(
        rows=report.rows,
        rows_per_s=report.rows_per_s,
        seconds=report.seconds,
        store=config.url,
        feast_rows=min(baseline_rows, rows),
        feast_rows_per_s=round(feast_rps, 1),
        ratio=round(report.rows_per_s / feast_rps, 3) if feast_rps else float("nan"),
    )
