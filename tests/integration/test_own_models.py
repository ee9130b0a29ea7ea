"""Models brought from outside, on the cluster: batch-scored by Ray Data on both of its
paths (XGBoost in the fused read-score-write tasks, PyTorch in an actor pool), and the
PyTorch one served by a decision app of its own on Ray Serve, predicting in a ``Model``
deployment, whose answers equal the batch job's. Every flavour's scores through the
function those tasks and actors run are checked in the unit tier
(``tests/unit/test_own_models.py``)."""

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
from tests.byo_models import CONTRACT, Predict, churn_table, save_model

from sluice.approval.register import register_model
from sluice.auth import KeyStore, Scope
from sluice.registry import Registry
from sluice.scoring import ScoreRequest, run_scoring
from sluice.settings import SluiceSettings

ON_RAY = ("xgboost", "pytorch")


@pytest.fixture(scope="module")
def registered(
    settings: SluiceSettings, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Predict]:
    """The models of :data:`ON_RAY` as ``churn-<flavour>@challenger``, with their own
    predict."""
    root = tmp_path_factory.mktemp("own-models")
    own = {}
    for flavor in ON_RAY:
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


@pytest.mark.parametrize("flavor", ON_RAY)
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


def _deploy(name: str, args: dict[str, object], port: int, tmp: Path, model: bool = False) -> None:
    """decision.yaml's decision app, renamed, at ``/NAME``, with ``args``; with ``model``,
    plus a ``Model`` deployment (here on half a CPU, where a GPU model asks for a GPU)."""
    from sluice.serve.launcher import deploy, load_config

    raw = yaml.safe_load((Path(__file__).parents[2] / "deployments" / "decision.yaml").read_text())
    app = raw["applications"][0]
    app.update(name=name, route_prefix=f"/{name}")
    app["args"].update(args, model_poll_interval_s=0.5)
    app["deployments"][0]["ray_actor_options"] = {"num_cpus": 0.5}
    if model:
        app["deployments"].append({"name": "Model", "ray_actor_options": {"num_cpus": 0.5}})
    raw["applications"] = [app]
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    deploy(load_config(path, port=port))


@pytest.fixture(scope="module")
def torch_app(
    registered: dict[str, Predict],
    service: str,
    serve_port: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """A decision app of its own for ``churn-pytorch`` at ``/torch``, beside the others,
    predicting in its ``Model`` deployment; its contract is the model's stored one."""
    from ray import serve

    from sluice.serve.readiness import http_ok, wait_until

    args = {"models": ["churn-pytorch@challenger"], "model_deployment": True}
    _deploy("torch", args, serve_port, tmp_path_factory.mktemp("torch-app"), model=True)
    url = f"{service}/torch"
    ready, detail = wait_until(http_ok(f"{url}/readyz"), 180)
    try:
        assert ready, detail
        yield url
    finally:
        serve.delete("torch")


def test_online_answers_equal_batch_scores_and_follow_the_models_contract(
    torch_app: str, registered: dict[str, Predict], settings: SluiceSettings, tmp_path: Path
) -> None:
    key = KeyStore(settings.keys_file).create(f"own-{time.monotonic_ns()}", (Scope.SCORE,))[0]
    headers = {"Authorization": f"Bearer {key}"}
    served = httpx.get(f"{torch_app}/v1/models", headers=headers, timeout=10).json()["models"]
    assert [m["predictor"] for m in served] == ["remote"]
    rows = churn_table(50, seed=21).drop_columns(["label"]).drop_null().to_pylist()
    online = httpx.post(f"{torch_app}/v1/score", json={"rows": rows}, headers=headers, timeout=60)
    assert online.status_code == 200, online.text
    assert online.json()["model_name"] == "churn-pytorch"
    assert online.json()["model_version"] == served[0]["version"]

    table = pa.Table.from_pylist(rows, schema=CONTRACT.arrow_schema())
    pq.write_table(table, tmp_path / "a.parquet")
    run_scoring(
        ScoreRequest(
            str(tmp_path / "a.parquet"),
            "churn-pytorch@challenger",
            tmp_path / "out",
            progress=False,
        ),
        Registry(settings),
    )
    batch = pq.read_table(tmp_path / "out" / "scores").to_pylist()
    by_id = {r["customer_id"]: r["score"] for r in batch}
    assert [s["score"] for s in online.json()["scores"]] == [by_id[r["customer_id"]] for r in rows]
    expected = registered["pytorch"](CONTRACT.encode_rows(rows))
    np.testing.assert_allclose([by_id[r["customer_id"]] for r in rows], expected, rtol=1e-6)

    spec = httpx.get(f"{torch_app}/openapi.json", timeout=10).json()
    schemas = spec["components"]["schemas"].values()
    assert any("days_since_last" in s.get("properties", {}) for s in schemas)
    broken = {k: v for k, v in rows[0].items() if k != "spend_90d"} | {"plan": "gold"}
    bad = httpx.post(f"{torch_app}/v1/score", json={"rows": [broken]}, headers=headers, timeout=30)
    assert bad.status_code == 422
    fields = {e["field"] for e in bad.json()["errors"]}
    assert any(f.endswith("plan") for f in fields), fields
    assert any(f.endswith("spend_90d") for f in fields), fields
    missing = {**rows[0], "days_since_last": None}  # the network's NaN: refused, named
    nan = httpx.post(f"{torch_app}/v1/score", json={"rows": [missing]}, headers=headers, timeout=60)
    assert nan.status_code == 422 and nan.json()["field"] == "rows[0]", nan.text
