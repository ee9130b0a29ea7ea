"""Models trained elsewhere, one per flavour, on a contract that is not built in: checked
and registered, scored with their flavour's own predict, served through the same API."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from tests.byo_models import (
    CONTRACT,
    CONTRACT_YAML,
    FLAVOURS,
    Predict,
    churn_table,
    save_model,
    write_table,
)
from tests.conftest import settings_at
from tests.unit.test_cli import last_json, sluice

from sluice.approval.register import register_model
from sluice.auth import KeyStore, Scope
from sluice.contracts.contract_files import parse_contract
from sluice.decisioning.catalog import CatalogSource
from sluice.errors import InputError
from sluice.registry import Registry
from sluice.scoring.batch import ScoringTask, score_batch
from sluice.scoring.predictor import prepare_predictor
from sluice.serve.backends import LocalBackend
from sluice.serve.engine import ScoringEngine
from sluice.serve.http import create_api
from sluice.settings import SluiceSettings


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> SluiceSettings:
    """One registry for the module (each test registers under names of its own)."""
    return settings_at(tmp_path_factory.mktemp("own-models") / "home")


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, Predict]]:
    """Each flavour's model, trained and saved once: its directory and its own predict."""
    root = tmp_path_factory.mktemp("saved")
    return {f: (str(root / f), save_model(f, root / f)) for f in FLAVOURS}


@pytest.mark.parametrize("flavor", FLAVOURS)
def test_each_flavour_registers_and_scores_as_its_own_predict(
    flavor: str, home: SluiceSettings, saved: dict[str, tuple[str, Predict]]
) -> None:
    directory, own = saved[flavor]
    registry = Registry(home)
    done = register_model(registry, directory, CONTRACT, name=f"churn-{flavor}")
    assert done.flavor == flavor
    assert done.info.aliases == ("challenger",)
    assert done.info.tags["feature_contract"] == "churn-lite@1.0.0"

    loaded = registry.load(f"churn-{flavor}@challenger")
    assert (loaded.flavor, loaded.contract) == (flavor, CONTRACT)
    table = churn_table(500, seed=7)
    checked = CONTRACT.validate_batch(table)
    predictor = prepare_predictor(loaded, "auto", home.home_dir / "cache").build()
    np.testing.assert_allclose(predictor.predict(checked.matrix), own(checked.matrix), rtol=1e-6)


def test_batch_quarantines_rows_a_model_cannot_score(
    home: SluiceSettings, saved: dict[str, tuple[str, Predict]]
) -> None:
    """The network returns NaN for a missing recency: those rows are quarantined with the
    reason, the others scored; none is lost."""
    directory, own = saved["pytorch"]
    registry = Registry(home)
    register_model(registry, directory, CONTRACT, name="nan-torch")
    loaded = registry.load("nan-torch@challenger")
    spec = prepare_predictor(loaded, "auto", home.home_dir / "cache")
    assert spec.kind == "native"
    table = churn_table(400, seed=3)
    out = score_batch(table, ScoringTask(loaded.name, loaded.version, CONTRACT, spec))
    assert out.num_rows == 400
    missing = set(
        table.filter(table.column("days_since_last").is_null()).column("customer_id").to_pylist()
    )
    assert missing
    quarantined = out.filter(out.column("reason").is_valid())
    assert set(quarantined.column("customer_id").to_pylist()) == missing
    assert all(
        r.startswith("score: model nan-torch/1 returned nan")
        for r in quarantined.column("reason").to_pylist()
    )
    scored = out.filter(out.column("reason").is_null())
    assert all(0 <= s <= 1 for s in scored.column("score").to_pylist())
    ok = table.filter(table.column("days_since_last").is_valid())
    np.testing.assert_allclose(
        scored.column("score").to_numpy(), own(CONTRACT.validate_batch(ok).matrix), rtol=1e-6
    )


def test_a_model_the_contract_does_not_fit_is_refused(
    home: SluiceSettings, saved: dict[str, tuple[str, Predict]], tmp_path: Path
) -> None:
    directory = saved["sklearn"][0]
    registry = Registry(home)
    fewer = parse_contract(
        {
            **CONTRACT.model_dump(mode="json"),
            "features": [f.model_dump(mode="json") for f in CONTRACT.features[:3]],
        }
    )
    with pytest.raises(InputError) as caught:
        register_model(registry, directory, fewer, name="churn")
    assert caught.value.field == "contract" and "lacks plan" in caught.value.message
    with pytest.raises(InputError) as nothing:
        register_model(registry, str(tmp_path / "absent"), CONTRACT, name="churn")
    assert nothing.value.field == "model-uri"


def test_a_model_that_does_not_return_probabilities_is_refused(
    home: SluiceSettings, tmp_path: Path
) -> None:
    import mlflow.sklearn
    from sklearn.linear_model import LinearRegression

    table = churn_table(300, seed=2).drop_null()
    checked = CONTRACT.validate_batch(table)
    y = table.column("orders_90d").to_numpy() * 100.0
    mlflow.sklearn.save_model(LinearRegression().fit(checked.matrix, y), str(tmp_path / "m"))
    with pytest.raises(InputError) as caught:
        register_model(Registry(home), str(tmp_path / "m"), CONTRACT, name="churn")
    assert caught.value.field == "model-uri" and "probabilities in [0, 1]" in caught.value.message


@pytest.mark.parametrize("flavor", FLAVOURS)
def test_served_through_the_same_api_with_the_models_contract(
    flavor: str, home: SluiceSettings, saved: dict[str, tuple[str, Predict]]
) -> None:
    """The API answers with the batch job's scores for the same rows, documents the
    model's contract and refuses a request that breaks it, naming each field."""
    directory, own = saved[flavor]
    registry = Registry(home)
    name = f"served-{flavor}"
    info = register_model(registry, directory, CONTRACT, name=name).info
    registry.promote(info.version, name=name, by="tests", floors={}, ceilings={})
    engine = ScoringEngine([f"{name}@champion"], CONTRACT, registry)
    assert engine.refresh() == [f"champion: None -> {info.version}"]
    store = KeyStore(home.home_dir / "keys.json")
    key = store.create(f"byo-{flavor}", (Scope.SCORE,))[0]
    client = TestClient(create_api(LocalBackend(engine, CatalogSource.read()), store, CONTRACT))
    headers = {"Authorization": f"Bearer {key}"}
    table = churn_table(30, seed=9).drop_columns(["label"]).drop_null()
    rows = table.to_pylist()
    r = client.post("/v1/score", json={"rows": rows}, headers=headers)
    assert r.status_code == 200, r.text
    assert (r.json()["model_name"], r.json()["model_version"]) == (name, info.version)
    loaded = registry.load(f"{name}@champion")
    spec = prepare_predictor(loaded, "auto", home.home_dir / "cache")
    batch = score_batch(table, ScoringTask(name, info.version, CONTRACT, spec))
    assert [s["score"] for s in r.json()["scores"]] == batch.column("score").to_pylist()
    np.testing.assert_allclose(
        batch.column("score").to_numpy(), own(CONTRACT.encode_rows(rows)), rtol=1e-6
    )

    schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert any("plan" in s.get("properties", {}) for s in schema.values())
    broken = [{**rows[0], "plan": "gold"}, {k: v for k, v in rows[1].items() if k != "spend_90d"}]
    bad = client.post("/v1/score", json={"rows": broken}, headers=headers)
    assert bad.status_code == 422
    fields = {f["field"] for f in bad.json()["errors"]}
    assert any("plan" in f for f in fields) and any("spend_90d" in f for f in fields), fields


def test_register_from_the_command_line(
    home: SluiceSettings, saved: dict[str, tuple[str, Predict]], tmp_path: Path
) -> None:
    contract_file = tmp_path / "churn.yaml"
    contract_file.write_text(CONTRACT_YAML)
    validation = write_table(churn_table(600, seed=5), tmp_path / "valid.parquet")
    done = sluice(
        "models",
        "register",
        "--model-uri",
        saved["sklearn"][0],
        "--contract",
        str(contract_file),
        "--name",
        "cli-churn",
        "--validation",
        str(validation),
        home=home.home_dir,
    )
    assert done.returncode == 0, done.stderr
    figures = last_json(done.stdout)
    assert figures["flavor"] == "sklearn" and figures["aliases"] == ["challenger"]
    assert 0.6 < figures["metrics"]["roc_auc"] <= 1
    assert not math.isnan(figures["metrics"]["log_loss"])
    version = Registry(home).resolve("cli-churn@challenger")
    assert version.metrics["roc_auc"] == pytest.approx(figures["metrics"]["roc_auc"], abs=1e-6)
    assert Registry(home).load("cli-churn@challenger").reference is not None

    wrong = sluice(
        "models",
        "register",
        "--model-uri",
        saved["sklearn"][0],
        "--contract",
        "propensity",
        home=home.home_dir,
    )
    assert wrong.returncode != 0 and "contract" in wrong.stderr


def test_the_same_way_to_champion_and_back(
    home: SluiceSettings, saved: dict[str, tuple[str, Predict]], tmp_path: Path
) -> None:
    """Approval on a held-out window in a person's name, then rollback, as for Sluice's own."""
    from sluice.approval import approve
    from sluice.errors import PromotionRefusedError
    from sluice.registry.rollback import rollback

    registry = Registry(home)
    for flavor in ("sklearn", "xgboost"):
        register_model(registry, saved[flavor][0], CONTRACT, name="way")
    window = write_table(churn_table(800, seed=13), tmp_path / "window.parquet")
    with pytest.raises(PromotionRefusedError) as refused:
        approve("1", "Dana", window=window, name="way", floors={"roc_auc": 0.99}, registry=registry)
    assert "roc_auc" in refused.value.message
    first = approve(
        "1", "Dana", window=window, name="way", floors={"roc_auc": 0.6}, registry=registry
    )
    assert first.metrics["roc_auc"] > 0.6 and first.previous is None
    second = approve(
        "2", "Dana", window=window, name="way", floors={"roc_auc": 0.6}, registry=registry
    )
    assert second.previous == "1"
    assert registry.load("way@champion").flavor == "xgboost"
    back = rollback("Dana", name="way", reason="tests", registry=registry)
    assert back is not None and (back.from_version, back.to_version) == ("2", "1")
    assert registry.load("way@champion").flavor == "sklearn"


def test_the_gpu_model_config_is_valid() -> None:
    """deployments/own-model-gpu.yaml: a Serve config whose app args validate, with a
    Model deployment that asks for a GPU."""
    from sluice.serve.app import DecisionAppArgs
    from sluice.serve.launcher import load_config

    config = load_config(Path(__file__).parents[2] / "deployments" / "own-model-gpu.yaml")
    [app] = config.applications
    args = DecisionAppArgs.model_validate(app.args)
    assert args.model_deployment and args.models == ("churn@champion", "churn@challenger")
    model = {d.name: d for d in app.deployments}["Model"]
    assert model.ray_actor_options.num_gpus == 1


def test_the_contract_is_read_without_the_model(
    home: SluiceSettings, saved: dict[str, tuple[str, Predict]]
) -> None:
    """A decision replica whose model runs in a Model deployment reads only the contract:
    the model's files are not copied into its cache."""
    registry = Registry(home)
    info = register_model(registry, saved["pytorch"][0], CONTRACT, name="contract-only").info
    assert registry.contract("contract-only@challenger") == CONTRACT
    assert not (home.home_dir / "cache" / "models" / "contract-only").exists()
    registry.load("contract-only@challenger")
    assert registry.contract(f"contract-only/{info.version}") == CONTRACT
