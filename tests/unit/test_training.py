from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from sluice.data import SynthCalendar
from sluice.data.population import US_PER_DAY, day_us
from sluice.errors import InputError
from sluice.features import build_features, load_synthetic
from sluice.hashing import unit_hash
from sluice.training import TrainConfig, evaluate, train
from sluice.training.metrics import lift_table


def _features(synth_dir: Path, out: Path, cutoff: date) -> Path:
    c = day_us(cutoff)
    pq.write_table(
        build_features(load_synthetic(synth_dir, c, c + 90 * US_PER_DAY), cutoff).table, out
    )
    return out


def test_metrics_on_known_scores() -> None:
    y = np.array([0, 0, 0, 1, 1] * 20)
    perfect = np.array([0.1, 0.2, 0.3, 0.8, 0.9] * 20)
    ev = evaluate(y, perfect)
    assert ev.roc_auc == 1.0 and ev.pr_auc == 1.0 and ev.base_rate == 0.4
    assert sum(b.count for b in ev.calibration) == 100
    assert ev.lift[0].lift == pytest.approx(2.5) and ev.lift[-1].cumulative_gain == pytest.approx(
        1.0
    )
    assert [d.positives for d in lift_table(y, perfect)][:4] == [10, 10, 10, 10]
    with pytest.raises(ValueError, match="both classes"):
        evaluate(np.zeros(10), np.zeros(10))


def test_holdout_split_is_deterministic_and_salted() -> None:
    ids = [f"c{i}" for i in range(2_000)]
    a, b = unit_hash(ids, "s1"), unit_hash(ids, "s1")
    np.testing.assert_array_equal(a, b)
    assert 0.15 < (a < 0.2).mean() < 0.25
    assert not np.array_equal(a, unit_hash(ids, "s2"))


def test_training_learns_the_latent_propensity(
    synth_dir: Path, tmp_path: Path, calendar: SynthCalendar
) -> None:
    train_file = _features(synth_dir, tmp_path / "train.parquet", calendar.train_cutoff)
    valid_file = _features(synth_dir, tmp_path / "valid.parquet", calendar.valid_cutoff)
    held = train(train_file, config=TrainConfig(num_boost_round=120, seed=3))
    assert held.validation == "holdout" and held.evaluation.roc_auc > 0.7
    assert held.n_train + held.n_valid == pq.read_metadata(train_file).num_rows
    later = train(train_file, valid_file, TrainConfig(num_boost_round=120))
    assert (
        later.validation == "later-cutoff"
        and later.valid_cutoff == calendar.valid_cutoff.isoformat()
    )
    assert later.evaluation.roc_auc > 0.7 and later.evaluation.lift[0].lift > 2
    assert later.booster.num_trees() == later.best_iteration
    assert [f.name for f in later.reference.features] == list(later.contract.names)


def test_training_refuses_unlabelled_features(
    synth_dir: Path, tmp_path: Path, calendar: SynthCalendar
) -> None:
    unlabelled = _features(synth_dir, tmp_path / "aud.parquet", calendar.score_cutoff)
    with pytest.raises(InputError, match="no label column") as info:
        train(unlabelled)
    assert info.value.field == "label"
