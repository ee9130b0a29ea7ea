"""``sluice bench online --by-id``: decisions by customer id against decisions with the
features in the request, on the same Serve app, in the same run.

The same preparation and load as ``sluice bench online`` (a trained, promoted model, a
50,000-customer audience, ``seconds`` at ``concurrency`` from a separate load-generator
process), with the audience materialized into the online store the settings name (Feast's
SQLite store in the scratch home unless ``SLUICE_ONLINE_STORE_URL`` says otherwise). One
``sluice serve`` answers both loads, one after the other: ``/v1/decide`` with a customer
context and its 18 features, then ``/v1/decide`` with the same context and no features,
which the decision replica looks up by id in the online store.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from sluice.bench.batch import scratch_env, scratch_settings
from sluice.bench.online import _free_port, _load, _prepare, _stop


@dataclass(frozen=True)
class ByIdBench:
    seconds: float
    concurrency: int
    store: str
    materialized_rows: int
    features_rps: float
    by_id_rps: float
    ratio_rps: float
    features_p50_ms: float
    by_id_p50_ms: float
    features_p99_ms: float
    by_id_p99_ms: float
    ratio_p99: float
    features_errors: int
    by_id_errors: int


def _bodies(work: Path) -> tuple[Path, Path]:
    row = pq.read_table(work / "audience.parquet").slice(0, 1).to_pylist()[0]
    context = {
        "customer_id": row["customer_id"],
        "country": row["country"],
        "consents": {"email": True, "sms": True},
    }
    features = {k: v for k, v in row.items() if k != "customer_id"}
    with_features, by_id = work / "decide-features.json", work / "decide-by-id.json"
    with_features.write_text(json.dumps({"customer": context, "features": features}))
    by_id.write_text(json.dumps({"customer": context}))
    return with_features, by_id


def run_by_id_bench(seconds: float, concurrency: int, work: Path, config: Path) -> ByIdBench:
    from sluice.auth import KeyStore, Scope
    from sluice.contracts.propensity import PROPENSITY_V1
    from sluice.online import OnlineStore, OnlineStoreConfig, materialize

    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    settings = scratch_settings(work / "home")
    env = scratch_env(settings)
    _prepare(work, settings)
    key, _ = KeyStore(settings.home_dir / "api-keys.json").create("bench-by-id", (Scope.DECIDE,))
    store = OnlineStore(OnlineStoreConfig.from_settings(settings), PROPENSITY_V1)
    report = materialize(work / "audience.parquet", PROPENSITY_V1, store)
    with_features, by_id = _bodies(work)

    port = str(_free_port())
    cmd = [sys.executable, "-m", "sluice", "serve", "--port", port, "--config", str(config)]
    served = subprocess.Popen(
        cmd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        assert served.stdout is not None
        line = served.stdout.readline()
        if not line:
            raise RuntimeError("sluice serve exited before it was ready")
        url = json.loads(line)["url"]
        a = _load(url, with_features, key, seconds, concurrency, env, "/v1/decide")
        b = _load(url, by_id, key, seconds, concurrency, env, "/v1/decide")
    finally:
        _stop(served)
    return ByIdBench(
        seconds=seconds,
        concurrency=concurrency,
        store=store.url,
        materialized_rows=report.rows,
        features_rps=a["rps"],
        by_id_rps=b["rps"],
        ratio_rps=round(b["rps"] / a["rps"], 3) if a["rps"] else float("nan"),
        features_p50_ms=a["p50_ms"],
        by_id_p50_ms=b["p50_ms"],
        features_p99_ms=a["p99_ms"],
        by_id_p99_ms=b["p99_ms"],
        ratio_p99=round(b["p99_ms"] / a["p99_ms"], 3) if a["p99_ms"] else float("nan"),
        features_errors=int(a["errors"]),
        by_id_errors=int(b["errors"]),
    )
