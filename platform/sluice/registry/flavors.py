"""Which MLflow flavour a model directory holds, and what its signature says.

Sluice scores a registered model with the most specific flavour it knows, in this
order: ``lightgbm`` (compiled to C where a compiler is present), ``xgboost``,
``sklearn``, ``pytorch``, then ``python_function`` for anything else MLflow can load.
A model with none of them cannot be scored and is refused at registration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml

from sluice.errors import InputError

Flavor = Literal["lightgbm", "xgboost", "sklearn", "pytorch", "pyfunc"]
FLAVORS: tuple[Flavor, ...] = ("lightgbm", "xgboost", "sklearn", "pytorch", "pyfunc")
POOLED: frozenset[str] = frozenset({"pytorch", "pyfunc"})
"""Flavours batch scoring runs in an actor pool: loading them is heavy, or they want a GPU."""
_MLFLOW_NAMES: dict[str, Flavor] = {
    "lightgbm": "lightgbm",
    "xgboost": "xgboost",
    "sklearn": "sklearn",
    "pytorch": "pytorch",
    "python_function": "pyfunc",
}


def mlmodel(directory: Path) -> dict[str, Any]:
    """The parsed ``MLmodel`` file of a model directory."""
    path = directory / "MLmodel"
    if not path.is_file():
        raise InputError(
            f"model-uri: {directory} is not an MLflow model (no MLmodel file)", field="model-uri"
        )
    loaded = yaml.safe_load(path.read_text())
    if not isinstance(loaded, dict) or not isinstance(loaded.get("flavors"), dict):
        raise InputError(f"model-uri: {path} has no flavors", field="model-uri")
    return loaded


def detect_flavor(directory: Path) -> Flavor:
    """The flavour Sluice scores the model in ``directory`` with."""
    present = {_MLFLOW_NAMES[f] for f in mlmodel(directory)["flavors"] if f in _MLFLOW_NAMES}
    for flavor in FLAVORS:
        if flavor in present:
            return flavor
    found = ", ".join(mlmodel(directory)["flavors"]) or "none"
    raise InputError(
        f"model-uri: the model has no flavour Sluice can score (has: {found}; needs one of "
        "lightgbm, xgboost, sklearn, pytorch, python_function)",
        field="model-uri",
    )


def signature_inputs(directory: Path) -> tuple[str, ...] | None:
    """The input column names of the model's signature, if it has a column signature."""
    import json

    signature = mlmodel(directory).get("signature") or {}
    raw = signature.get("inputs")
    if not raw:
        return None
    columns = json.loads(raw) if isinstance(raw, str) else raw
    names = tuple(str(c["name"]) for c in columns if isinstance(c, dict) and c.get("name"))
    return names if len(names) == len(columns) else None


def lightgbm_text(directory: Path) -> str:
    """The LightGBM model text of a ``lightgbm`` flavour directory (a Booster saved as
    text, or a scikit-learn API estimator whose booster is read out)."""
    conf = mlmodel(directory)["flavors"]["lightgbm"]
    data = directory / str(conf.get("data", "model.lgb"))
    if data.suffix == ".lgb":
        return data.read_text()
    import mlflow.lightgbm

    estimator = mlflow.lightgbm.load_model(str(directory))
    return str(estimator.booster_.model_to_string())
