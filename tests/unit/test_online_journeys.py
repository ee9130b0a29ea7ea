"""Journeys score from the online store with the decision service's lookup: the same
scores as from the feature file, only rows dated at or before the batch's time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from tests.conftest import SCORE_CUTOFF
from tests.online_support import online_config

from sluice.contracts import PROPENSITY_V1
from sluice.journeys.context import Scorer
from sluice.online import OnlineStore, OnlineStoreConfig, materialize
from sluice.registry import Registry
from sluice.settings import SluiceSettings
from sluice.training import TrainedModel

CUTOFF = datetime(SCORE_CUTOFF.year, SCORE_CUTOFF.month, SCORE_CUTOFF.day, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "redis"])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OnlineStoreConfig]:
    yield from online_config(request.param, tmp_path)


def test_journey_scores_from_the_online_store_equal_the_file_scores(
    config: OnlineStoreConfig,
    fresh_settings: SluiceSettings,
    trained_model: TrainedModel,
    features_dir: Path,
    tmp_path: Path,
) -> None:
    audience = tmp_path / "audience.parquet"
    pq.write_table(pq.read_table(features_dir / "audience.parquet").slice(0, 300), audience)
    materialize(audience, PROPENSITY_V1, OnlineStore(config, PROPENSITY_V1))
    yaml_path = config.write_feature_store_yaml(tmp_path / "repo")
    registry = Registry(fresh_settings)
    model = registry.load(f"sluice-propensity/{registry.register(trained_model).version}")
    ids = [*pq.read_table(audience).column("customer_id").to_pylist()[:50], "ghost-1"]

    from_file = Scorer(audience, model).score(ids)
    at = CUTOFF + timedelta(hours=1)
    online = Scorer(yaml_path, model).score(ids, at=at)
    assert len(from_file.scores) == 50 and online.scores == from_file.scores
    assert set(online.features_at.values()) == {CUTOFF} and "ghost-1" not in online.scores

    assert Scorer(yaml_path, model).score(ids, at=CUTOFF - timedelta(seconds=1)).scores == {}
    late = CUTOFF + timedelta(hours=PROPENSITY_V1.max_age_hours + 1)
    assert Scorer(yaml_path, model).score(ids, at=late).scores == {}
