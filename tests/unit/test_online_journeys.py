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


def test_a_journey_decision_from_the_online_store_is_audited_with_its_feature_time(
    config: OnlineStoreConfig,
    fresh_settings: SluiceSettings,
    trained_model: TrainedModel,
    features_dir: Path,
    tmp_path: Path,
) -> None:
    """A journey send whose offer the decision rules choose on a score from the online
    store: the message's audit record keeps the timestamp of the feature row it was
    scored on, and ``sluice audit explain`` says it."""
    import secrets

    import pyarrow as pa
    from sqlalchemy import select

    from sluice.audit.explain import explain
    from sluice.channels.unsubscribe import Keyring
    from sluice.contracts.clock import ManualClock
    from sluice.journeys.engine import EngineConfig, JourneyEngine
    from sluice.journeys.entries import EntryRequest
    from sluice.store.db import connect
    from sluice.store.journeys import Journeys
    from sluice.store.schema import audit

    audience = tmp_path / "audience.parquet"
    pq.write_table(pq.read_table(features_dir / "audience.parquet").slice(0, 40), audience)
    materialize(audience, PROPENSITY_V1, OnlineStore(config, PROPENSITY_V1))
    yaml_path = config.write_feature_store_yaml(tmp_path / "repo")
    ids = [str(c) for c in pq.read_table(audience).column("customer_id").to_pylist()]
    n = len(ids)
    pq.write_table(
        pa.table(
            {
                "customer_id": ids,
                "email": [f"{c}@example.com" for c in ids],
                "first_name": ["Ana"] * n,
                "country": ["US"] * n,
                "time_zone": ["UTC"] * n,
                "locale": ["en-US"] * n,
                "consent_email": [True] * n,
            }
        ),
        tmp_path / "customers.parquet",
    )
    registry = Registry(fresh_settings)
    model = registry.load(f"sluice-propensity/{registry.register(trained_model).version}")
    spec = {
        "journey_id": "online",
        "name": "Online",
        "customers": str(tmp_path / "customers.parquet"),
        "features": str(yaml_path),
        "channels": {"email": {"transport": "outbox", "path": str(tmp_path / "outbox")}},
        "gates": {"quiet_hours": None, "frequency_cap": None},
        "entry": {"api": True},
        "holdout_pct": 0,
        "steps": [{"id": "offer", "send": {"channel": "email", "offer": "decision"}}],
    }
    url = fresh_settings.effective_database_url
    clock = ManualClock()
    clock.set(CUTOFF + timedelta(hours=2))
    db = connect(url)
    Journeys(db, clock).deploy("online", spec, "test")
    keys = Keyring.of(secrets.token_urlsafe(32), origin="test")
    engine = JourneyEngine(EngineConfig(url, tmp_path, models=lambda _uri: model), keys, clock)
    engine.enter("online", [EntryRequest(c, {}, clock.now()) for c in ids])
    engine.tick()
    engine.close()
    with db.connect() as conn:
        rows = conn.execute(
            select(audit.c.customer_id, audit.c.score, audit.c.features_at, audit.c.run_id)
        ).all()
    assert len(rows) == n
    assert {r.features_at.replace(tzinfo=UTC) for r in rows} == {CUTOFF}
    assert all(r.score is not None for r in rows)
    text, _ = explain(str(rows[0].run_id), str(rows[0].customer_id), url)
    assert f"features as of {CUTOFF:%Y-%m-%d %H:%M:%S} UTC" in text
