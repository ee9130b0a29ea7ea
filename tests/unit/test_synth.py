from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from sluice.contracts import Channel, ChannelConsent, CustomerProfile
from sluice.data import SynthConfig, synthesize, true_propensity
from sluice.data.population import day_us


def test_same_seed_same_base_and_other_seed_differs(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    synthesize(SynthConfig(customers=3_000, seed=5, chunk_size=1_000), a)
    synthesize(SynthConfig(customers=3_000, seed=5, chunk_size=1_000), b)
    synthesize(SynthConfig(customers=3_000, seed=6, chunk_size=1_000), c)
    for name in ("customers", "transactions", "events", "truth"):
        assert pq.read_table(a / f"{name}.parquet").equals(pq.read_table(b / f"{name}.parquet"))
    assert not pq.read_table(a / "customers.parquet").equals(pq.read_table(c / "customers.parquet"))


def test_profiles_satisfy_the_customer_contract(synth_dir: Path) -> None:
    customers = pq.read_table(synth_dir / "customers.parquet")
    ids = customers.column("customer_id")
    assert pc.count_distinct(ids).as_py() == customers.num_rows == 12_000
    for row in customers.slice(0, 300).to_pylist():
        consents = [
            ChannelConsent(
                channel=ch,
                granted=row[f"consent_{ch.value}"],
                updated_at=row[f"consent_{ch.value}_at"],
            )
            for ch in Channel
            if row[f"consent_{ch.value}"] is not None
        ]
        CustomerProfile(
            customer_id=row["customer_id"],
            email=row["email"],
            phone=row["phone"],
            first_name=row["first_name"],
            last_name=row["last_name"],
            country=row["country"],
            time_zone=row["time_zone"],
            locale=row["locale"],
            signup_date=row["signup_date"],
            consents=tuple(consents),
        )
    # SMS consent exists only where there is a phone number to send to.
    sms = customers.filter(pc.is_valid(customers.column("consent_sms")))
    assert pc.all(pc.is_valid(sms.column("phone"))).as_py()
    # A consent state without its timestamp (or the reverse) would break the consent gate.
    for ch in ("email", "sms", "push"):
        state, at = customers.column(f"consent_{ch}"), customers.column(f"consent_{ch}_at")
        assert pc.all(pc.equal(pc.is_valid(state), pc.is_valid(at))).as_py()


def test_history_ends_at_the_configured_day_and_truth_is_a_probability(synth_dir: Path) -> None:
    end = datetime(2026, 7, 1, tzinfo=UTC)
    for name in ("transactions", "events"):
        ts = pq.read_table(synth_dir / f"{name}.parquet").column("timestamp")
        assert pc.max(ts).as_py() < end
    truth = pq.read_table(synth_dir / "truth.parquet")
    p = truth.column("propensity_90d").to_numpy()
    assert np.all((p >= 0) & (p <= 1)) and 0.02 < p.mean() < 0.5
    again = true_propensity(truth, datetime(2026, 7, 1).date(), 90)
    np.testing.assert_allclose(again, p)


def test_latent_propensity_drives_purchases(synth_dir: Path) -> None:
    tx = pq.read_table(synth_dir / "transactions.parquet")
    truth = pq.read_table(synth_dir / "truth.parquet")
    counts = pc.value_counts(tx.column("customer_id"))
    per = {str(v["values"]): int(v["counts"]) for v in counts.to_pylist()}
    z = truth.column("latent_propensity").to_numpy()
    n = np.array([per.get(c, 0) for c in truth.column("customer_id").to_pylist()])
    assert np.corrcoef(z, n)[0, 1] > 0.25


def test_rejects_an_empty_base(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="customers"):
        synthesize(SynthConfig(customers=0), tmp_path)
    assert day_us(datetime(1970, 1, 2).date()) == 86_400_000_000
