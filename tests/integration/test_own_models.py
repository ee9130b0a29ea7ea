"""Models brought from outside, on the cluster: each flavour batch-scored by Ray Data
(PyTorch in an actor pool), and one served by its own decision app on Ray Serve, whose
answers equal the batch job's for the same rows."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from tests.byo_models import CONTRACT, FLAVOURS, Predict, churn_table, save_model

from sluice.approval.register import register_model
from sluice.auth import KeyStore, Scope
from sluice.registry import Registry
from sluice.scoring import ScoreRequest, run_scoring
from sluice.settings import SluiceSettings


@pytest.fixture(scope="module")
def registered(
    settings: SluiceSettings, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Predict]:
    """One model of each flavour as ``churn-<flavour>@challenger``, with its own predict."""
    root = tmp_path_factory.mktemp("own-models")
    own = {}
    for flavor in FLAVOURS:
        own[flavor] = save_model(flavor, root / flavor)
        register_model(Registry(settings), str(root / flavor), CONTRACT, name=f"churn-{flavor}")
    return own


def _audience(target: Path) -> pa.Table:
    """3,000 good rows in three files, and rows that break the contract."""
    target.mkdir()
    good = churn_table(3000, seed=11).drop_columns(["label"])
    for i in range(3):
        pq.write_table(good.slice(i * 1000, 1000), target / f"part-{i}.parquet")
    bad = good.slice(0, 3).set_column(4, "plan", pa.array(["gold", "basic", "pro"]))
    bad = bad.set_column(1, "orders_90d", pa.array([1, -2, 3]))
    bad = bad.set_column(2, "spend_90d", pa.array([1.0, 2.0, -5.0]))
    bad = bad.set_column(0, "customer_id", pa.array(["bad-0", "bad-1", "bad-2"]))
    pq.write_table(bad, target / "upload-bad.parquet")
    return good


@pytest.mark.parametrize("flavor", FLAVOURS)
def test_each_flavour_batch_scores_as_its_own_predict(
    flavor: str, registered: dict[str, Predict], settings: SluiceSettings, tmp_path: Path
) -> None:
    good = _audience(tmp_path / "audience")
    report = run_scoring(
        ScoreRequest(
            str(tmp_path / "audience"),
            f"churn-{flavor}@challenger",
            tmp_path / "out",
            progress=False,
        ),
        Registry(settings),
    )
    scores = pq.read_table(tmp_path / "out" / "scores")
    quarantine = pq.read_table(tmp_path / "out" / "quarantine")
    assert report.scored + report.quarantined == good.num_rows + 3
    bad = {r["customer_id"]: r["reason"] for r in quarantine.to_pylist()}
    assert "plan: 'gold' is not an allowed category" in bad["bad-0"]
    assert "orders_90d" in bad["bad-1"] and "spend_90d" in bad["bad-2"]

    by_id = dict(
        zip(
            scores.column("customer_id").to_pylist(),
            scores.column("score").to_pylist(),
            strict=True,
        )
    )
    checked = CONTRACT.validate_batch(good)
    expected = registered[flavor](checked.matrix)
    ids = checked.ids.to_pylist()
    if flavor == "pytorch":  # the network returns NaN for a missing recency: quarantined
        assert report.predictor == "native"
        nan = [c for c, e in zip(ids, expected, strict=True) if np.isnan(e)]
        assert nan and all(bad[c].startswith("score: model churn-pytorch/") for c in nan)
        keep = ~np.isnan(expected)
        ids, expected = [c for c, k in zip(ids, keep, strict=True) if k], expected[keep]
    np.testing.assert_allclose([by_id[c] for c in ids], expected, rtol=1e-6)
    assert len(by_id) == len(ids)


@pytest.fixture(scope="module")
def churn_app(
    registered: dict[str, Predict],
    service: str,
    serve_port: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """A decision app of its own for ``churn-xgboost``, at ``/churn`` beside the others:
    the contract is the model's stored one."""
    from sluice.serve.launcher import deploy, load_config
    from sluice.serve.readiness import http_ok, wait_until

    raw = yaml.safe_load((Path(__file__).parents[2] / "deployments" / "decision.yaml").read_text())
    app = raw["applications"][0]
    app.update(name="churn", route_prefix="/churn")
    app["args"].update(models=["churn-xgboost@challenger"], model_poll_interval_s=0.5)
    app["deployments"][0]["ray_actor_options"] = {"num_cpus": 0.5}
    raw["applications"] = [app]
    path = tmp_path_factory.mktemp("churn-app") / "churn.yaml"
    path.write_text(yaml.safe_dump(raw))
    deploy(load_config(path, port=serve_port))
    url = f"{service}/churn"
    ready, detail = wait_until(http_ok(f"{url}/readyz"), 180)
    assert ready, detail
    yield url
    from ray import serve

    serve.delete("churn")


def test_online_answers_equal_batch_scores_and_follow_the_models_contract(
    churn_app: str, registered: dict[str, Predict], settings: SluiceSettings, tmp_path: Path
) -> None:
    key = KeyStore(settings.keys_file).create(f"own-{time.monotonic_ns()}", (Scope.SCORE,))[0]
    headers = {"Authorization": f"Bearer {key}"}
    rows = churn_table(50, seed=21).drop_columns(["label"]).to_pylist()
    online = httpx.post(f"{churn_app}/v1/score", json={"rows": rows}, headers=headers, timeout=30)
    assert online.status_code == 200, online.text
    assert online.json()["model_name"] == "churn-xgboost"

    pq.write_table(
        pa.Table.from_pylist(rows, schema=CONTRACT.arrow_schema()), tmp_path / "a.parquet"
    )
    run_scoring(
        ScoreRequest(
            str(tmp_path / "a.parquet"),
            "churn-xgboost@challenger",
            tmp_path / "out",
            progress=False,
        ),
        Registry(settings),
    )
    batch = pq.read_table(tmp_path / "out" / "scores").to_pylist()
    by_id = {r["customer_id"]: r["score"] for r in batch}
    assert [s["score"] for s in online.json()["scores"]] == [by_id[r["customer_id"]] for r in rows]

    spec = httpx.get(f"{churn_app}/openapi.json", timeout=10).json()
    assert any(
        "days_since_last" in s.get("properties", {}) for s in spec["components"]["schemas"].values()
    )
    broken = {k: v for k, v in rows[0].items() if k != "spend_90d"} | {"plan": "gold"}
    bad = httpx.post(f"{churn_app}/v1/score", json={"rows": [broken]}, headers=headers, timeout=30)
    assert bad.status_code == 422
    fields = {e["field"] for e in bad.json()["errors"]}
    assert any(f.endswith("plan") for f in fields) and any(
        f.endswith("spend_90d") for f in fields
    ), fields
