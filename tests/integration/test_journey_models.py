"""Journeys that ask a model: a score branch and the decision rules' offer and channel,
with the registered champion on the journey's feature rows."""

from __future__ import annotations

import secrets
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import select

from sluice.channels.unsubscribe import Keyring
from sluice.contracts.journey import JourneySpec
from sluice.journeys.engine import EngineConfig, JourneyEngine
from sluice.journeys.entries import EntryRequest
from sluice.registry import Registry, VersionInfo
from sluice.settings import SluiceSettings
from sluice.store.db import connect
from sluice.store.journeys import Journeys
from sluice.store.schema import audit, journey_instances, journey_steps


def test_score_branch_and_decision_offer_use_the_champion(
    settings: SluiceSettings,
    champion: VersionInfo,
    features_dir: Path,
    synth_dir: Path,
    tmp_path: Path,
) -> None:
    features = features_dir / "audience.parquet"
    ids = [str(c) for c in pq.read_table(features, columns=["customer_id"]).column(0)[:300]]
    # The same rows through the champion's booster, independently of the journey.
    model = Registry(settings).load("sluice-propensity@champion")
    rows = pq.read_table(features).to_pandas().set_index("customer_id").loc[ids].reset_index()
    checked = model.contract.validate_batch(pa.Table.from_pandas(rows, preserve_index=False))
    expected = dict(
        zip(
            [str(c) for c in checked.ids.to_pylist()],
            lgb.Booster(model_str=model.model_text).predict(checked.matrix),
            strict=True,
        )
    )
    # A threshold between the scores, whatever the model: both paths are taken.
    threshold = float(np.median(list(expected.values())))
    spec = JourneySpec.model_validate(
        {
            "journey_id": "score-test",
            "name": "Scores",
            "customers": str(synth_dir / "customers.parquet"),
            "features": str(features),
            "channels": {
                "email": {"transport": "outbox", "path": str(tmp_path / "outbox")},
                "sms": {"transport": "outbox", "path": str(tmp_path / "outbox")},
                "push": {"transport": "outbox", "path": str(tmp_path / "outbox")},
            },
            "gates": {"quiet_hours": None, "frequency_cap": None},
            "entry": {"api": True},
            "holdout_pct": 0,
            "steps": [
                {"id": "likely", "branch": {"score": {"above": threshold}, "else": "plain"}},
                {"id": "best", "send": {"channel": "best", "offer": "decision"}, "next": "end"},
                {
                    "id": "plain",
                    "send": {"channel": "email", "offer": {"id": "loyalty-double-points"}},
                },
                {"id": "end", "exit": {"reason": "done"}},
            ],
        }
    )
    url = settings.effective_database_url
    db = connect(url)
    Journeys(db, settings.clock).deploy(spec.journey_id, spec.public(), "test")
    registry = Registry(settings)
    keys = Keyring.of(secrets.token_urlsafe(32), origin="test")
    engine = JourneyEngine(
        EngineConfig(url, tmp_path, batch=500, models=registry.load), keys, settings.clock
    )
    now = settings.clock.now()
    engine.enter(spec.journey_id, [EntryRequest(c, {}, now) for c in ids])
    engine.tick()
    engine.close()

    with db.connect() as conn:
        branch = dict(
            conn.execute(
                select(journey_instances.c.customer_id, journey_steps.c.outcome)
                .join(journey_steps, journey_steps.c.instance_id == journey_instances.c.instance_id)
                .where(
                    journey_instances.c.journey_id == "score-test",
                    journey_steps.c.step_id == "likely",
                )
            ).all()
        )
        records = conn.execute(
            select(audit.c.run_id, audit.c.customer_id, audit.c.score, audit.c.model_version,
                   audit.c.offer_id, audit.c.channel)
            .where(audit.c.campaign_id == "score-test")
        ).all()  # fmt: skip
    assert len(branch) == len(ids)
    for c in ids:
        want = "then" if expected[c] >= threshold else "else"
        assert branch[c] == want, (c, expected[c])
    assert {"then", "else"} <= set(branch.values())
    decided = [r for r in records if r.run_id == spec.step_run_id("best", 0)]
    assert decided and all(r.model_version == champion.version for r in decided)
    for r in decided:
        assert np.isclose(r.score, expected[r.customer_id], rtol=0, atol=1e-9)
    chosen = {(r.offer_id, r.channel) for r in decided if r.offer_id}
    assert chosen and all(ch in ("email", "sms", "push") for _, ch in chosen)
    plain = [r for r in records if r.run_id == spec.step_run_id("plain", 0)]
    assert plain and {r.offer_id for r in plain} == {"loyalty-double-points"}
