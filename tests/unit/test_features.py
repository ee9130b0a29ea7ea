from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.contracts import PROPENSITY_V1
from sluice.contracts.transactions import TRANSACTIONS_V1
from sluice.data import SynthCalendar
from sluice.data.population import US_PER_DAY, day_us
from sluice.errors import InputError
from sluice.features import History, build_features, load_synthetic, load_transaction_log
from sluice.features.sources import KIND_CODES

CUT = date(2026, 1, 1)
C = day_us(CUT)
D = US_PER_DAY


def _history(
    tx: list[tuple[int, float, float]], ev: list[tuple[int, str, float]], end_days: float = 200
) -> History:
    """Two customers; times are in days relative to the cutoff."""
    return History(
        customer_ids=pa.array(["a", "b"]),
        signup_us=np.array([C - 400 * D, C - 10 * D], dtype=np.int64),
        country=pa.array(["DE", None]),
        tx_owner=np.array([o for o, _, _ in tx], dtype=np.int64),
        tx_us=np.array([C + int(t * D) for _, t, _ in tx], dtype=np.int64),
        tx_amount=np.array([a for _, _, a in tx], dtype=np.float64),
        ev_owner=np.array([o for o, _, _ in ev], dtype=np.int64),
        ev_us=np.array([C + int(t * D) for _, _, t in ev], dtype=np.int64),
        ev_kind=np.array([KIND_CODES[k] for _, k, _ in ev], dtype=np.int8),
        data_end_us=C + int(end_days * D),
        quarantine=pa.table({"row": pa.array([], pa.int64())}),
    )


def test_known_history_gives_known_features_and_labels() -> None:
    tx = [
        (0, -400, 10.0),
        (0, -100, 20.0),
        (0, -20, 30.0),
        (0, -5, -30.0),
        (0, 0, 99.0),
        (0, 30, 1.0),
        (1, 5, 7.0),
    ]
    ev = [
        (0, "email_sent", -50),
        (0, "email_sent", -10),
        (0, "email_open", -9),
        (0, "email_click", -8.5),
        (0, "web_visit", -2),
        (1, "web_visit", 1),
    ]
    row_a, row_b = build_features(_history(tx, ev), CUT).table.to_pylist()
    assert row_a["recency_days"] == 20.0
    assert (
        row_a["frequency_30d"],
        row_a["frequency_90d"],
        row_a["frequency_365d"],
        row_a["frequency_lifetime"],
    ) == (1, 1, 2, 3)
    assert (row_a["monetary_30d"], row_a["monetary_365d"], row_a["monetary_lifetime"]) == (
        30.0,
        50.0,
        60.0,
    )
    assert row_a["avg_order_value_365d"] == 25.0
    assert row_a["tenure_days"] == 400
    assert (
        row_a["email_sends_90d"],
        row_a["email_open_rate_90d"],
        row_a["email_click_rate_90d"],
    ) == (2, 0.5, 0.5)
    assert (row_a["web_visits_30d"], row_a["days_since_engagement"]) == (1, 2.0)
    assert row_a["country"] == "DE"
    # The purchase at the cutoff itself and the one 30 days later are labels, not features.
    assert (row_a["label"], row_a["label_purchases"], row_a["label_revenue"]) == (1, 2, 100.0)
    assert row_b["recency_days"] is None and row_b["frequency_lifetime"] == 0
    assert row_b["email_open_rate_90d"] is None and row_b["country"] is None
    assert row_b["label"] == 1


def test_no_labels_when_the_history_ends_inside_the_label_window() -> None:
    built = build_features(_history([], [], end_days=30), CUT, horizon_days=90)
    assert not built.labelled and "label" not in built.table.column_names
    assert built.table.schema.metadata[b"sluice.labelled"] == b"false"


@settings(max_examples=60, deadline=None)
@given(
    past=st.lists(
        st.tuples(st.integers(0, 1), st.floats(-600, -0.001), st.floats(-50, 500)), max_size=25
    ),
    future=st.lists(
        st.tuples(st.integers(0, 1), st.floats(0, 300), st.floats(-50, 500)), max_size=25
    ),
    future_ev=st.lists(
        st.tuples(st.integers(0, 1), st.sampled_from(list(KIND_CODES)), st.floats(0, 300)),
        max_size=25,
    ),
)
def test_no_feature_sees_anything_at_or_after_the_cutoff(
    past: list, future: list, future_ev: list
) -> None:
    """Adding any activity at or after the cutoff never changes a feature."""
    base = build_features(_history(past, [], end_days=400), CUT).table
    more = build_features(_history(past + future, future_ev, end_days=400), CUT).table
    for name in PROPENSITY_V1.names:
        assert base.column(name).equals(more.column(name)), name
    log_base = build_features(_history(past, []), CUT, contract=TRANSACTIONS_V1).table
    log_more = build_features(_history(past + future, []), CUT, contract=TRANSACTIONS_V1).table
    for name in TRANSACTIONS_V1.names:
        assert log_base.column(name).equals(log_more.column(name)), name
    with_past_ev = [(o, k, -t - 0.01) for o, k, t in future_ev]
    b2 = build_features(_history(past, with_past_ev, end_days=400), CUT).table
    m2 = build_features(_history(past + future, with_past_ev + future_ev, end_days=400), CUT).table
    assert b2.drop_columns(["label", "label_purchases", "label_revenue"]).equals(
        m2.drop_columns(["label", "label_purchases", "label_revenue"])
    )


def _background(customers: int) -> list[tuple[int, float, float]]:
    """Purchases drawn from a buy-till-you-die process (a Poisson rate per customer, a
    chance to drop out after each purchase): the BG/NBD model can be fitted on them."""
    rng = np.random.default_rng(5)
    out = []
    for c in range(customers):
        rate, dropout = rng.gamma(0.8, 1 / 25.0), rng.beta(1.0, 3.0)
        t = -500.0 + rng.uniform(0, 150)
        while t < -0.5:
            out.append((c, t, float(rng.integers(5, 80))))
            if rng.random() < dropout:
                break
            t += rng.exponential(1 / rate)
    return out


def _many(tx: list[tuple[int, float, float]], customers: int) -> History:
    return History(
        customer_ids=pa.array([f"c{i}" for i in range(customers)]),
        signup_us=np.full(customers, C - 600 * D, dtype=np.int64),
        country=pa.nulls(customers, pa.string()),
        tx_owner=np.array([o for o, _, _ in tx], dtype=np.int64),
        tx_us=np.array([C + int(t * D) for _, t, _ in tx], dtype=np.int64),
        tx_amount=np.array([a for _, _, a in tx], dtype=np.float64),
        ev_owner=None,
        ev_us=None,
        ev_kind=None,
        data_end_us=C + 400 * D,
        quarantine=pa.table({"row": pa.array([], pa.int64())}),
    )


@settings(max_examples=20, deadline=None)
@given(
    past=st.lists(
        st.tuples(st.integers(0, 39), st.floats(-600, -0.001), st.floats(-50, 500)), max_size=30
    ),
    future=st.lists(
        st.tuples(st.integers(0, 39), st.floats(0, 300), st.floats(-50, 500)), min_size=1
    ),
)
def test_no_log_feature_sees_anything_at_or_after_the_cutoff(past: list, future: list) -> None:
    """The same on a log of 40 customers whose BG/NBD model can be fitted: its expected
    purchases and probabilities, like every other log feature, ignore the future."""
    history = _background(40) + past
    base = build_features(_many(history, 40), CUT, contract=TRANSACTIONS_V1).table
    more = build_features(_many(history + future, 40), CUT, contract=TRANSACTIONS_V1).table
    assert base.column("btyd_p_alive").null_count < 40  # the model was fitted
    for name in TRANSACTIONS_V1.names:
        assert base.column(name).equals(more.column(name)), name
    assert TRANSACTIONS_V1.validate_batch(base).n_quarantined == 0


def test_synthetic_base_builds_valid_features(synth_dir: Path, calendar: SynthCalendar) -> None:
    cut = calendar.train_cutoff
    history = load_synthetic(synth_dir, day_us(cut), day_us(cut) + 90 * D)
    built = build_features(history, cut)
    assert built.labelled and built.table.num_rows > 10_000
    checked = PROPENSITY_V1.validate_batch(built.table)
    assert checked.n_quarantined == 0
    assert 0.05 < float(np.mean(built.table.column("label").to_numpy())) < 0.4


def test_transaction_log_quarantines_unreadable_rows(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    log.write_text(
        "customer_id,timestamp,amount,store\n"
        "a,2025-12-01T10:00:00Z,10.5,x\n"
        "a,2025-12-20 08:00:00,4,x\n"
        "b,not-a-date,3,x\n"
        ",2025-11-01,3,x\n"
        "c,2025-11-02,abc,x\n"
        "c,2026-01-15,8,x\n"
    )
    history = load_transaction_log(log, C)
    assert history.customer_ids.to_pylist() == ["a"]  # c's only valid purchase is after the cutoff
    reasons = history.quarantine.column("reason").to_pylist()
    assert reasons == [
        "timestamp: not an ISO 8601 time",
        "customer_id: missing",
        "amount: not a finite number",
    ]
    assert history.quarantine.column("row").to_pylist() == [2, 3, 4]
    row = build_features(history, CUT).table.to_pylist()[0]
    assert row["frequency_lifetime"] == 2 and row["recency_days"] == pytest.approx(12 - 8 / 24)
    assert row["email_sends_90d"] is None and row["tenure_days"] == 30


def test_transaction_log_missing_column_names_it(tmp_path: Path) -> None:
    log = tmp_path / "log.parquet"
    pq.write_table(pa.table({"customer_id": ["a"], "timestamp": ["2025-01-01"]}), log)
    with pytest.raises(InputError, match="lacks column\\(s\\) amount") as info:
        load_transaction_log(log, C)
    assert info.value.field == "amount"
