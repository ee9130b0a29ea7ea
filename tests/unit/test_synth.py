from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from sluice.contracts import Channel, ChannelConsent, CustomerProfile
from sluice.data import SynthCalendar, SynthConfig, synthesize, true_propensity
from sluice.data.calendar import LABEL_DAYS
from sluice.data.population import day_us

END = date(2025, 9, 30)


def test_same_seed_same_base_and_other_seed_differs(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    synthesize(SynthConfig(customers=3_000, end=END, seed=5, chunk_size=1_000), a)
    synthesize(SynthConfig(customers=3_000, end=END, seed=5, chunk_size=1_000), b)
    synthesize(SynthConfig(customers=3_000, end=END, seed=6, chunk_size=1_000), c)
    for name in ("customers", "transactions", "events", "truth"):
        assert pq.read_table(a / f"{name}.parquet").equals(pq.read_table(b / f"{name}.parquet"))
    assert not pq.read_table(a / "customers.parquet").equals(pq.read_table(c / "customers.parquet"))


def test_a_base_dated_later_is_the_same_world_moved_in_time(tmp_path: Path) -> None:
    """The world is dated relative to its as-of day: generating it years later gives the
    same customers and histories, every timestamp moved by the same span."""
    later = END + timedelta(days=3 * 365 + 17)
    synthesize(SynthConfig(customers=1_500, end=END, seed=5, chunk_size=1_000), tmp_path / "a")
    synthesize(SynthConfig(customers=1_500, end=later, seed=5, chunk_size=1_000), tmp_path / "b")
    shift = later - END
    for name in ("transactions", "events"):
        a = pq.read_table(tmp_path / "a" / f"{name}.parquet")
        b = pq.read_table(tmp_path / "b" / f"{name}.parquet")
        assert a.num_rows == b.num_rows > 0
        moved = pc.add(a.column("timestamp"), pa.scalar(shift, pa.duration("us")))
        assert moved.equals(b.column("timestamp"))
        assert a.column("customer_id").equals(b.column("customer_id"))
    assert json.loads((tmp_path / "b" / "_meta.json").read_text())["end"] == later.isoformat()


def test_calendar_cutoffs_leave_every_label_window_inside_the_history() -> None:
    cal = SynthCalendar(date(2031, 3, 1))
    assert cal.history_end == date(2031, 2, 28)
    assert cal.valid_cutoff + timedelta(days=LABEL_DAYS) <= cal.as_of
    assert cal.train_cutoff + timedelta(days=LABEL_DAYS) <= cal.valid_cutoff
    assert cal.score_cutoff == cal.as_of


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


def test_history_ends_at_the_configured_day_and_truth_is_a_probability(
    synth_dir: Path, calendar: SynthCalendar
) -> None:
    as_of = calendar.as_of
    end = datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC)
    for name in ("transactions", "events"):
        ts = pq.read_table(synth_dir / f"{name}.parquet").column("timestamp")
        assert pc.max(ts).as_py() < end
    truth = pq.read_table(synth_dir / "truth.parquet")
    p = truth.column("propensity_90d").to_numpy()
    assert np.all((p >= 0) & (p <= 1)) and 0.02 < p.mean() < 0.5
    again = true_propensity(truth, as_of, 90)
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
        synthesize(SynthConfig(customers=0, end=END), tmp_path)
    assert day_us(datetime(1970, 1, 2).date()) == 86_400_000_000
