"""Sluice's own model beats the best simple baseline it reports, on the synthetic base and
on a real transaction log: CDNOW (23,570 customers' CD purchases, January 1997 to June
1998), as shipped inside the ``lifetimes`` wheel, so nothing is downloaded at run time.

The real log goes through the same path as ``sluice features build --transactions`` and
``sluice train``: the log is read (quarantining what cannot be read), features are built
under ``transactions@1.0.0`` and training picks that contract from the table."""

from __future__ import annotations

import importlib.resources
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sluice.contracts.transactions import TRANSACTIONS_V1
from sluice.data.population import day_us
from sluice.features import build_features, load_transaction_log
from sluice.training import TrainConfig, TrainedModel, train

CDNOW_CUTOFF = date(1997, 10, 1)
"""Nine months after the cohort's first purchases; the label is any purchase in the
90 days after it."""


def _margin(trained: TrainedModel) -> float:
    best = max(b.evaluation.roc_auc for b in trained.baselines)
    return trained.evaluation.roc_auc - best


@pytest.fixture(scope="module")
def cdnow_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CDNOW's master file as a transaction log (with its optional ``quantity``)."""
    source = importlib.resources.files("lifetimes") / "datasets" / "CDNOW_master.txt"
    with importlib.resources.as_file(source) as path:
        raw = pd.read_csv(path, sep=r"\s+", dtype={"customer_id": str, "date": str})
    log = pa.table(
        {
            "customer_id": raw["customer_id"],
            "timestamp": pd.to_datetime(raw["date"], format="%Y%m%d", utc=True),
            "amount": raw["dollar_value"],
            "quantity": raw["number_of_cds"],
        }
    )
    out = tmp_path_factory.mktemp("cdnow") / "cdnow.parquet"
    pq.write_table(log, out)
    return out


def test_the_model_beats_the_best_baseline_on_the_synthetic_base(
    trained_model: TrainedModel,
) -> None:
    assert trained_model.contract.key == "propensity@1.0.0"
    assert _margin(trained_model) > 0


def test_the_model_beats_the_best_baseline_on_a_real_transaction_log(
    cdnow_log: Path, tmp_path: Path
) -> None:
    history = load_transaction_log(cdnow_log, day_us(CDNOW_CUTOFF))
    assert len(history.customer_ids) == 23_570 and history.quarantine.num_rows == 0
    built = build_features(history, CDNOW_CUTOFF, 90, TRANSACTIONS_V1)
    assert built.labelled and TRANSACTIONS_V1.validate_batch(built.table).n_quarantined == 0
    features = tmp_path / "cdnow-features.parquet"
    pq.write_table(built.table, features)
    # One LightGBM thread: the same trees as two (checked), and seconds instead of a
    # minute when other work shares this machine's two cores.
    trained = train(features, config=TrainConfig(seed=42, params={"num_threads": 1}))
    assert trained.contract is TRANSACTIONS_V1
    assert [b.name for b in trained.baselines] == ["logit_rfm", "recency"]
    assert trained.n_valid > 4_000 and 0.1 < trained.evaluation.base_rate < 0.3
    assert _margin(trained) > 0, {
        "model": trained.evaluation.roc_auc,
        **{b.name: b.evaluation.roc_auc for b in trained.baselines},
    }
