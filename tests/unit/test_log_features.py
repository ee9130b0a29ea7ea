"""Features that read a transaction log by purchase day (``transactions@1.0.0``): known
histories give known values, optional log columns are read, and the BG/NBD fit matches the
published estimates on the CDNOW summary."""

from __future__ import annotations

import importlib.resources
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sluice.contracts.builtin import builtin_contract
from sluice.contracts.transactions import TRANSACTIONS_V1
from sluice.data.population import US_PER_DAY, day_us
from sluice.errors import InputError
from sluice.features import History, build_features, load_transaction_log
from sluice.features.btyd import bgnbd_features

CUT = date(2026, 1, 1)
C = day_us(CUT)
D = US_PER_DAY


def _log_history(tx: list[tuple[int, float, float]], n: int = 2) -> History:
    """``n`` customers; purchases as (customer, days from the cutoff, amount)."""
    return History(
        customer_ids=pa.array([f"c{i}" for i in range(n)]),
        signup_us=np.full(n, C - 800 * D, dtype=np.int64),
        country=pa.nulls(n, pa.string()),
        tx_owner=np.array([o for o, _, _ in tx], dtype=np.int64),
        tx_us=np.array([C + int(t * D) for _, t, _ in tx], dtype=np.int64),
        tx_amount=np.array([a for _, _, a in tx], dtype=np.float64),
        ev_owner=None,
        ev_us=None,
        ev_kind=None,
        data_end_us=C + 200 * D,
        quarantine=pa.table({"row": pa.array([], pa.int64())}),
    )


def test_known_purchase_days_give_known_rhythm_trend_and_values() -> None:
    tx = [
        (0, -400, 10.0),
        (0, -399.9, 5.0),  # the same day as the one before: one purchase day
        (0, -200, 20.0),
        (0, -100, 30.0),
        (0, -40, 40.0),
        (0, -39.5, 2.0),
        (0, -10, -40.0),  # a refund is not a purchase
        (0, 5, 99.0),  # after the cutoff: a label, not a feature
        (1, -50, 7.0),
    ]
    a, b = build_features(_log_history(tx), CUT, 90, TRANSACTIONS_V1).table.to_pylist()
    assert a["purchase_days_lifetime"] == 4 and a["frequency_lifetime"] == 6
    assert (a["purchase_days_90d"], a["purchase_days_365d"]) == (1, 3)
    assert a["interval_mean_days"] == pytest.approx(120.0)
    assert a["interval_std_days"] == pytest.approx(np.std([200, 100, 60]))
    assert a["last_gap_days"] == 60 and a["gap_ratio"] == pytest.approx(40 / 120)
    # 90 days: one purchase day (-40) against one (-100); 180 days: 2 against 1 (-200).
    assert a["trend_90d"] == 0.0 and a["trend_180d"] == pytest.approx(1 / 3)
    assert (a["first_order_value"], a["last_order_value"]) == (15.0, 42.0)
    assert a["label"] == 1 and b["label"] == 0
    assert b["purchase_days_lifetime"] == 1 and b["interval_mean_days"] is None
    assert b["trend_90d"] == 1.0 and b["first_order_value"] == b["last_order_value"] == 7.0
    # Without optional columns their features are missing, not zero.
    assert a["units_per_purchase_day"] is None and a["orders_lifetime"] is None
    assert a["distinct_products_lifetime"] is None
    for row in (a, b):  # two customers are too few to trust every BG/NBD answer
        for name in ("btyd_p_alive", "btyd_p_purchase"):
            assert row[name] is None or 0 <= row[name] <= 1
        assert row["btyd_expected_purchases"] is None or row["btyd_expected_purchases"] >= 0
    assert (
        TRANSACTIONS_V1.validate_batch(
            build_features(_log_history(tx), CUT, 90, TRANSACTIONS_V1).table
        ).n_quarantined
        == 0
    )


def test_optional_log_columns_add_units_orders_and_products(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    log.write_text(
        "customer_id,timestamp,amount,quantity,order_id,product\n"
        "a,2025-12-01T10:00:00Z,10,2,o1,p1\n"
        "a,2025-12-01T10:00:00Z,5,1,o1,p2\n"
        "a,2025-12-10,8,3,o2,p1\n"
        "b,2025-12-11,8,many,o3,p1\n"
        "b,2025-12-12,4,,o4,\n"
    )
    history = load_transaction_log(log, C)
    assert history.quarantine.column("reason").to_pylist() == ["quantity: not a finite number"]
    rows = {
        r["customer_id"]: r
        for r in build_features(history, CUT, 90, TRANSACTIONS_V1).table.to_pylist()
    }
    assert rows["a"]["units_per_purchase_day"] == 3.0  # 6 units on 2 purchase days
    assert rows["a"]["orders_lifetime"] == 2 and rows["a"]["distinct_products_lifetime"] == 2
    assert rows["b"]["orders_lifetime"] == 1 and rows["b"]["distinct_products_lifetime"] == 0
    assert rows["b"]["units_per_purchase_day"] == 0.0  # the empty quantity counts no units


def test_bgnbd_matches_the_published_cdnow_estimates() -> None:
    """Fader, Hardie and Lee (2005) report r=0.243, alpha=4.414, a=0.793, b=2.426 on the
    CDNOW cohort's 39-week calibration period (time in weeks)."""
    path = importlib.resources.files("lifetimes") / "datasets" / "cdnow_customers_summary.csv"
    with importlib.resources.as_file(path) as summary_file:
        summary = pd.read_csv(summary_file)
    x, t_x, T = (summary[c].to_numpy(dtype=np.float64) for c in ("frequency", "recency", "T"))
    fitted = bgnbd_features(x, t_x, T, horizon_days=39.0)
    assert fitted.params is not None
    published = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    for name, value in published.items():
        assert fitted.params[name] == pytest.approx(value, rel=0.01), name
    # A customer who bought often and lately is likelier active than one who went quiet.
    lately, long_ago = (x >= 5) & (T - t_x < 2), (x >= 5) & (T - t_x > 20)
    assert fitted.p_alive[lately].min() > 0.85 > 0.5 > fitted.p_alive[long_ago].max()
    assert np.all((fitted.p_purchase >= 0) & (fitted.p_purchase <= 1))


def test_bgnbd_without_enough_history_gives_missing_values() -> None:
    nan = np.array([np.nan, np.nan])
    fitted = bgnbd_features(np.array([0.0, 0.0]), np.array([0.0, 0.0]), np.array([5.0, 9.0]), 90)
    assert fitted.params is None and np.isnan(fitted.p_alive).all()
    assert np.isnan(bgnbd_features(nan, nan, nan, 90).expected_purchases).all()


def test_builtin_transactions_contract_and_unknown_features() -> None:
    assert builtin_contract("transactions") is TRANSACTIONS_V1
    assert {"recency_days", "frequency_lifetime", "monetary_lifetime"} <= set(TRANSACTIONS_V1.names)
    other = TRANSACTIONS_V1.model_copy(
        update={"features": (*TRANSACTIONS_V1.features[:2], TRANSACTIONS_V1.features[0])}
    )
    renamed = other.features[2].model_copy(update={"name": "loyalty_tier_score"})
    odd = type(TRANSACTIONS_V1).model_validate(
        {**TRANSACTIONS_V1.model_dump(), "features": [*other.features[:2], renamed]}
    )
    with pytest.raises(InputError, match="loyalty_tier_score that `features build` does not"):
        build_features(_log_history([(0, -5, 1.0)]), CUT, 90, odd)


def test_features_build_from_a_log_writes_the_transactions_contract(tmp_path: Path) -> None:
    log = tmp_path / "log.parquet"
    ts = pd.to_datetime(["2025-06-01", "2025-09-01", "2025-11-20", "2026-02-01"], utc=True)
    pq.write_table(
        pa.table({"customer_id": ["a", "a", "b", "a"], "timestamp": ts, "amount": [5, 6, 7, 8]}),
        log,
    )
    out = tmp_path / "f.parquet"
    env = {**os.environ, "SLUICE_HOME": str(tmp_path), "COLUMNS": "120"}
    args = ["features", "build", "--transactions", str(log), "--cutoff", "2026-01-01"]
    done = subprocess.run(
        [sys.executable, "-m", "sluice", *args, "--horizon-days", "31", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["contract"] == "transactions@1.0.0" and figures["labelled"] is True
    table = pq.read_table(out)
    assert table.schema.metadata[b"sluice.feature_contract"] == b"transactions@1.0.0"
    assert table.column("purchase_days_lifetime").to_pylist() == [2, 1]
