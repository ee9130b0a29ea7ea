"""Feature contracts written as data: YAML files validated with errors that name the
field, ``sluice contracts validate|show``, and ``sluice train --contract`` on any feature
table that meets the contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from sluice.contracts.builtin import BUILTIN_CONTRACTS, builtin_contract
from sluice.contracts.contract_files import (
    contract_to_yaml,
    field_path,
    load_contract_file,
    resolve_contract,
)
from sluice.contracts.propensity import PROPENSITY_V1
from sluice.errors import ConfigError, InputError
from sluice.registry import Registry
from sluice.settings import SluiceSettings
from sluice.training import TrainConfig, train

EXAMPLE = Path(__file__).resolve().parents[2] / "contracts" / "rfm-lite.yaml"


def _write(tmp_path: Path, data: object, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def _example_data() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


def test_the_example_contract_reads_and_round_trips() -> None:
    contract = load_contract_file(EXAMPLE)
    assert contract.key == "rfm-lite@1.0.0"
    assert contract.names[0] == "recency_days" and contract.monotone_constraints[0] == -1
    again = yaml.safe_load(contract_to_yaml(contract))
    assert type(contract).model_validate(again) == contract


def test_builtin_contracts_as_yaml_read_back_to_the_same_digest(tmp_path: Path) -> None:
    for key, contract in BUILTIN_CONTRACTS.items():
        path = _write(tmp_path, contract_to_yaml(contract), f"{contract.name}.yaml")
        read = load_contract_file(path)
        assert read == contract and read.digest() == contract.digest(), key
    # The pinned identity of the default contract is untouched by its YAML form.
    assert load_contract_file(tmp_path / "propensity.yaml").digest() == (
        "5daf63e5f7f0e2c77015efb4c9e6ae469066ca7c5dc4f1e02915940acd85f5a5"
    )
    # The JSON stored with models is YAML too: it reads the same.
    stored = _write(tmp_path, PROPENSITY_V1.to_json(), "stored.json")
    assert load_contract_file(stored) == PROPENSITY_V1


def _bad(change: dict[str, object], feature: int | None = None) -> dict:
    data = _example_data()
    (data["features"][feature] if feature is not None else data).update(change)
    return data


@pytest.mark.parametrize(
    ("data", "where", "message"),
    [
        (_bad({"max": "lots"}, 3), "features[3].max", "valid number"),
        (_bad({"min": 5, "max": 1}, 4), "features[4]", "tenure_days: min 5.0 is above max 1.0"),
        (_bad({"kind": "decimal"}, 1), "features[1].kind", "'float', 'int' or 'category'"),
        (_bad({"nulls": "ignore"}, 0), "features[0].nulls", "'reject' or 'missing'"),
        (_bad({"range": [0, 1]}, 2), "features[2].range", "Extra inputs are not permitted"),
        (_bad({"categories": ["a"]}, 2), "features[2]", "categories apply to category features"),
        (_bad({"direction": "up"}, 0), "features[0].direction", "'increasing' or 'decreasing'"),
        (_bad({"version": 1.0}), "version", "valid string"),
        (_bad({"name": "Bad Name"}), "name", "should match pattern"),
        (_bad({"features": []}), "features", "at least 1 item"),
        (_bad({"owner": "ana"}), "owner", "Extra inputs are not permitted"),
    ],
)
def test_errors_name_the_file_and_the_field_path(
    tmp_path: Path, data: dict, where: str, message: str
) -> None:
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_contract_file(path)
    assert info.value.field == where
    assert str(info.value).startswith(f"{path}: {where}: ")
    assert message in str(info.value)


def test_unreadable_files_are_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="feature contract not found"):
        load_contract_file(tmp_path / "none.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_contract_file(_write(tmp_path, "name: [unclosed\n"))
    with pytest.raises(ConfigError, match="a feature contract is a mapping"):
        load_contract_file(_write(tmp_path, "- just\n- a list\n"))
    dup = _example_data()
    dup["features"].append(dup["features"][0])
    with pytest.raises(
        ConfigError, match=r"contract: features: duplicate names \['recency_days'\]"
    ):
        load_contract_file(_write(tmp_path, dup))
    assert field_path(("features", 3, "max")) == "features[3].max" and field_path(()) == "contract"


def test_contracts_resolve_by_file_or_builtin_name(tmp_path: Path) -> None:
    assert resolve_contract("propensity") is PROPENSITY_V1
    assert builtin_contract("propensity@1.0.0") is PROPENSITY_V1
    assert builtin_contract("propensity@9.9.9") is None
    assert resolve_contract(EXAMPLE).key == "rfm-lite@1.0.0"
    with pytest.raises(ConfigError, match="neither a contract file nor a built-in") as info:
        resolve_contract(str(tmp_path / "nope.yaml"))
    assert info.value.field == "contract"


def test_training_under_a_contract_file_uses_only_its_features(features_dir: Path) -> None:
    contract = load_contract_file(EXAMPLE)
    trained = train(
        features_dir / "train.parquet",
        features_dir / "valid.parquet",
        TrainConfig(num_boost_round=30, params={"num_threads": 1}),
        contract,
    )
    assert trained.contract == contract and trained.booster.num_feature() == 5
    assert trained.booster.feature_name() == list(contract.names)
    assert trained.params["monotone_constraints"] == [-1, 0, 0, 0, 0]
    assert [b.name for b in trained.baselines] == ["logit_rfm", "recency"]
    assert trained.evaluation.roc_auc > 0.6


def test_a_table_without_a_contract_column_is_refused_naming_it(
    features_dir: Path, tmp_path: Path
) -> None:
    table = pq.read_table(features_dir / "train.parquet").drop_columns(["tenure_days"])
    pq.write_table(table, tmp_path / "t.parquet")
    with pytest.raises(InputError, match=r"lacks column\(s\) tenure_days of contract") as e:
        train(tmp_path / "t.parquet", contract=load_contract_file(EXAMPLE))
    assert e.value.field == "tenure_days"


def _sluice(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SLUICE_HOME": str(home), "COLUMNS": "160"}
    return subprocess.run(
        [sys.executable, "-m", "sluice", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_contracts_validate_and_show_on_the_command_line(
    features_dir: Path, tmp_path: Path
) -> None:
    table = str(features_dir / "train.parquet")
    done = _sluice("contracts", "validate", str(EXAMPLE), "--features", table, home=tmp_path)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["contract"] == "rfm-lite@1.0.0" and figures["valid"] is True
    assert figures["table"]["valid"] == figures["table"]["rows"] > 1_000
    assert "recency_days" in done.stdout and "decreasing" in done.stdout

    bad = _write(tmp_path, _bad({"max": "lots"}, 3))
    refused = _sluice("contracts", "validate", str(bad), home=tmp_path)
    assert refused.returncode == 2
    error = json.loads(refused.stderr.strip().splitlines()[-1])["error"]
    assert error["field"] == "features[3].max" and error["code"] == "invalid_config"

    shown = _sluice("contracts", "show", "propensity", home=tmp_path)
    assert shown.returncode == 0, shown.stderr
    path = _write(tmp_path, shown.stdout, "shown.yaml")
    assert load_contract_file(path) == PROPENSITY_V1
    listed = _sluice("contracts", "show", home=tmp_path)
    assert "propensity@1.0.0" in json.loads(listed.stdout.strip().splitlines()[-1])["builtin"]


def test_sluice_train_with_a_contract_file_stores_that_contract_with_the_model(
    features_dir: Path, tmp_path: Path
) -> None:
    args = ["train", "--features", str(features_dir / "train.parquet")]
    args += ["--valid-features", str(features_dir / "valid.parquet")]
    done = _sluice(*args, "--num-boost-round", "30", "--contract", str(EXAMPLE), home=tmp_path)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["contract"] == "rfm-lite@1.0.0" and figures["monotone"] == {"recency_days": -1}
    settings = SluiceSettings(
        home=tmp_path,
        tracking_uri=None,
        registry_uri=None,
        artifact_location=None,
        database_url=None,
    )
    loaded = Registry(settings).load(f"sluice-propensity/{figures['version']}")
    assert loaded.contract == load_contract_file(EXAMPLE)
