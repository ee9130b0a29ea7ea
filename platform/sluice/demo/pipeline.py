"""The demo pipeline: synthesise a base, build features, train, promote, batch-score.

Everything runs on embedded defaults under ``SLUICE_HOME``: a local Ray cluster, MLflow
on SQLite, local files. The audience directory gets one malformed partner upload beside
the real features, so the summary shows rows quarantined with their reasons.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from sluice.data import SynthConfig, synthesize
from sluice.data.population import US_PER_DAY, day_us
from sluice.features import build_features, load_synthetic
from sluice.registry import Registry
from sluice.scoring import ScoreRequest, run_scoring
from sluice.settings import get_settings
from sluice.training import TrainConfig, train

TRAIN_CUTOFF, VALID_CUTOFF, SCORE_CUTOFF = date(2026, 1, 1), date(2026, 4, 1), date(2026, 7, 1)


@dataclass(frozen=True)
class DemoConfig:
    customers: int = 200_000
    seed: int = 7
    workdir: Path | None = None
    """Where data and outputs go; default SLUICE_HOME/demo."""


def _features(data: Path, cutoff: date, out: Path) -> int:
    c = day_us(cutoff)
    built = build_features(load_synthetic(data, c, c + 90 * US_PER_DAY), cutoff)
    pq.write_table(built.table, out, row_group_size=65_536)
    return int(built.table.num_rows)


def _malformed_upload(good: Path, out: Path) -> int:
    """Ten rows a partner might send: text in numeric columns, negative counts, unknown
    countries, a missing id, and no tenure column at all."""
    rows = pq.read_table(good).slice(0, 10)
    idx = rows.schema.get_field_index
    rows = rows.set_column(0, "customer_id", pa.array([f"partner-{i}" for i in range(9)] + [None]))
    rows = rows.set_column(
        idx("recency_days"), "recency_days", pa.array(["12", "n/a"] + ["3.5"] * 8)
    )
    rows = rows.set_column(idx("frequency_30d"), "frequency_30d", pa.array([0, 0, -2] + [1] * 7))
    rows = rows.set_column(
        idx("country"), "country", pa.array(["DE", "DE", "DE", "ZZ"] + ["US"] * 6)
    )
    rows = rows.drop_columns(["tenure_days"])
    pq.write_table(rows, out)
    return int(rows.num_rows)


def run_demo(config: DemoConfig, step: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Run every stage; returns the figures the closing JSON line carries."""
    work = config.workdir or get_settings().home_dir / "demo"
    data, audience = work / "data", work / "audience"
    audience.mkdir(parents=True, exist_ok=True)

    step(f"Synthesising {config.customers:,} customers")
    synth = synthesize(SynthConfig(customers=config.customers, seed=config.seed), data)

    step("Building point-in-time features (train, validation, audience)")
    _features(data, TRAIN_CUTOFF, work / "features-train.parquet")
    _features(data, VALID_CUTOFF, work / "features-valid.parquet")
    _features(data, SCORE_CUTOFF, audience / "features.parquet")
    _malformed_upload(audience / "features.parquet", audience / "partner-upload.parquet")

    step("Training LightGBM and registering it in MLflow as challenger")
    trained = train(work / "features-train.parquet", work / "features-valid.parquet", TrainConfig())
    registry = Registry()
    version = registry.register(trained)

    step(f"Promoting version {version.version} to champion (metric floors)")
    registry.promote(version.version)

    step("Batch-scoring the audience on Ray Data with sluice-propensity@champion")
    report = run_scoring(
        ScoreRequest(
            audience=str(audience),
            model="sluice-propensity@champion",
            out=work / "scores",
            overwrite=True,
            progress=False,
        )
    )
    return {
        "customers": synth.customers,
        "model_version": version.version,
        "roc_auc": round(trained.evaluation.roc_auc, 4),
        "pr_auc": round(trained.evaluation.pr_auc, 4),
        "top_decile_lift": round(trained.evaluation.lift[0].lift, 3),
        "scored": report.scored,
        "quarantined": report.quarantined,
        "quarantine_reasons": report.reasons,
        "rows_per_s": report.rows_per_s,
        "predictor": report.predictor,
        "scores": str(work / "scores"),
    }
