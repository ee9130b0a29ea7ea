"""Safe rollout without Ray: approvals and rollback on a real MLflow store, arm
assignment, interval estimates, guardrail tests and PSI against known distributions."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from sluice.approval import approve
from sluice.campaign.candidates import assign_arms
from sluice.contracts.campaign import Guardrail
from sluice.drift.reference import _numeric, psi
from sluice.errors import ConflictError, PromotionRefusedError
from sluice.feedback.guardrails import check
from sluice.feedback.kpis import RunKpis
from sluice.feedback.stats import mean, p_above_ratio, p_below_lift, rate, wilson
from sluice.registry import CHALLENGER, CHAMPION, Registry
from sluice.registry.rollback import rollback
from sluice.settings import SluiceSettings
from sluice.store import connect
from sluice.store.operations import OperationsLog
from sluice.training import TrainedModel


def test_champion_needs_a_named_approver_floors_on_a_window_and_can_roll_back(
    db_settings: SluiceSettings, trained_model: TrainedModel, features_dir: Path
) -> None:
    registry = Registry(db_settings)
    first = registry.register(trained_model)
    with pytest.raises(PromotionRefusedError, match="named approver"):
        registry.promote(first.version)
    with pytest.raises(PromotionRefusedError, match=r"roc_auc: .* >= 0.99 FAILS"):
        approve(
            first.version,
            "ana",
            window=features_dir / "valid.parquet",
            floors={"roc_auc": 0.99},
            registry=registry,
        )
    done = approve(first.version, "ana", window=features_dir / "valid.parquet", registry=registry)
    assert done.window.endswith("valid.parquet") and done.previous is None
    tags = registry.resolve(f"sluice-propensity/{first.version}").tags
    assert tags["approval.by"] == "ana" and tags["promoted.champion_by"] == "ana"
    assert float(tags["approval.metric.roc_auc"]) == pytest.approx(done.metrics["roc_auc"], 1e-5)
    assert {d.variable for d in done.drift} >= {"score", "recency_days"}

    second = registry.register(trained_model)
    approve(
        second.version, "ben", registry=registry
    )  # registration metrics when no window is given
    assert registry.resolve("sluice-propensity@champion").version == second.version
    back = rollback("carla", reason="complaints up", registry=registry)
    assert back is not None and (back.from_version, back.to_version) == ("2", "1")
    assert registry.resolve("sluice-propensity@champion").version == "1"
    assert registry.resolve("sluice-propensity/2").tags["rolled_back.champion_by"] == "carla"
    with pytest.raises(ConflictError, match="no earlier version"):
        rollback("carla", registry=registry)
    # the challenger (version 2) rolls back to version 1, its previous holder
    assert registry.resolve("sluice-propensity@challenger").version == "2"
    assert (
        rollback("dan", alias=CHALLENGER, registry=registry, only_if="1") is None
    )  # no longer what was seen
    moved = rollback("dan", alias=CHALLENGER, registry=registry, only_if="2")
    assert moved is not None and moved.to_version == "1"
    log = OperationsLog(connect(db_settings.effective_database_url)).entries()
    assert [(o.kind, o.actor) for o in log] == [
        ("approve", "ana"),
        ("approve", "ben"),
        ("rollback", "carla"),
        ("rollback", "dan"),
    ]
    assert log[1].detail["previous"] == "1" and log[1].detail["window"] == "registration validation"
    assert CHAMPION in registry.resolve("sluice-propensity/1").aliases


def test_arms_are_stable_salted_and_sized() -> None:
    ids = [f"c{i}" for i in range(40_000)]
    arms = assign_arms(ids, "camp", holdout_pct=10, canary_pct=20)
    shares = {k: v / len(ids) for k, v in Counter(arms.tolist()).items()}
    assert shares["holdout"] == pytest.approx(0.10, abs=0.01)
    assert shares["canary"] == pytest.approx(0.20, abs=0.01)
    assert (assign_arms(ids, "camp", 10, 20) == arms).all()  # a rerun assigns the same
    # growing the canary keeps the holdout and moves only main customers into canary
    wider = assign_arms(ids, "camp", 10, 30)
    assert ((arms == "holdout") == (wider == "holdout")).all()
    assert (wider[arms == "canary"] == "canary").all()
    assert (assign_arms(ids, "other-salt", 10, 20) != arms).mean() > 0.3


def test_intervals_match_known_values() -> None:
    assert wilson(5, 100) == pytest.approx((0.02154, 0.11175), abs=1e-4)
    assert wilson(0, 50) == pytest.approx((0.0, 0.07135), abs=1e-4)
    m = mean(total=30.0, total_sq=500.0, n=3)  # values 10, 10, 10 would be 300
    assert m.value == 10.0 and m.var == pytest.approx((500 - 300) / 2 / 3)
    # 40/1000 against 2 x 10/1000: z = (0.04 - 0.02) / sqrt(.04*.96/1000 + 4*.01*.99/1000)
    z = 0.02 / math.sqrt(0.04 * 0.96 / 1000 + 4 * 0.01 * 0.99 / 1000)
    assert p_above_ratio(rate(40, 1000), rate(10, 1000), 2.0) == pytest.approx(
        0.5 * math.erfc(z / math.sqrt(2))
    )
    assert p_above_ratio(rate(20, 1000), rate(10, 1000), 2.0) == pytest.approx(0.5)
    assert p_below_lift(rate(30, 1000), rate(60, 1000), 0.0) < 0.001
    assert p_below_lift(rate(60, 1000), rate(30, 1000), 0.0) > 0.99


def _kpis(canary: tuple[int, int], main: tuple[int, int], sent: int) -> RunKpis:
    est = {
        "canary": {"complaint_rate": rate(*canary), "conversion_rate": rate(5, 100)},
        "main": {"complaint_rate": rate(*main), "conversion_rate": rate(5, 100)},
    }
    return RunKpis(run=None, arms=[], estimates=est, sent={"canary": sent}, scores={})  # type: ignore[arg-type]


def test_a_guardrail_fires_only_with_enough_sends_and_significance() -> None:
    g = Guardrail(name="complaints", metric="complaint_rate", max_ratio=2.0, min_sent=500)
    assert check(g, _kpis((40, 1000), (10, 1000), 1000)).fired
    quiet = check(g, _kpis((40, 1000), (10, 1000), 499))
    assert not quiet.fired and "waiting for 500 canary sends" in quiet.detail
    assert not check(g, _kpis((25, 1000), (10, 1000), 1000)).fired  # 2.5x, not significant
    with pytest.raises(ValueError, match="exactly one of max_ratio or min_lift"):
        Guardrail(name="x", metric="complaint_rate", max_ratio=2.0, min_lift=0.0)


def test_psi_against_known_distributions() -> None:
    rng = np.random.default_rng(3)
    reference = _numeric("x", rng.normal(0, 1, 200_000), bins=10)
    same = psi(reference.proportions, reference.histogram(rng.normal(0, 1, 200_000)))
    assert same < 0.002
    # A mean shift of d standard deviations: PSI tends to d^2 (the symmetric KL divergence
    # of two normals) as bins get finer; deciles capture most of it.
    for d in (0.25, 0.5, 1.0):
        shifted = psi(reference.proportions, reference.histogram(rng.normal(d, 1, 200_000)))
        assert 0.8 * d * d < shifted < 1.05 * d * d
    # Half the rows missing: the missing bucket carries the drift.
    values = rng.normal(0, 1, 100_000)
    values[: len(values) // 2] = np.nan
    assert psi(reference.proportions, reference.histogram(values)) > 2
