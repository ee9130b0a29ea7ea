"""Predictors for models brought in other flavours: XGBoost, scikit-learn, PyTorch, pyfunc.

Every model is handed the same input: the rows its feature contract validated and
encoded (floats; a category as its position in the contract's list; null as NaN), in
the contract's column order, as a float64 matrix (XGBoost, scikit-learn), or for PyTorch
and pyfunc models an array of their tensor signature's dtype or else a pandas frame with
the contract's column names. What comes back becomes one
probability per row: the positive class's column of a two-column output, the only
column of a one-column output. Each worker unpacks the model from the archive in its
spec once and keeps it loaded. :func:`trial_matrix` and :func:`not_probabilities` are the
checks registration, batch scoring and the decision service share.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from sluice.contracts.feature_contract import FeatureContract, FeatureKind
from sluice.errors import InputError


def pack(directory: Path) -> bytes:
    """The model directory as an uncompressed tar archive (shipped to workers)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(directory, arcname="model")
    return buffer.getvalue()


def unpack(archive: bytes, digest: str) -> Path:
    """This process's copy of the archived model directory."""
    target = Path(tempfile.gettempdir()) / f"sluice-model-{digest[:24]}"
    if not (target / "model" / "MLmodel").exists():
        staging = Path(tempfile.mkdtemp(prefix=f".sluice-model-{digest[:12]}-"))
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r") as tar:
            tar.extractall(staging, filter="data")
        try:
            staging.rename(target)
        except OSError:  # another worker on this node unpacked it first
            import shutil

            shutil.rmtree(staging, ignore_errors=True)
    return target / "model"


def trial_matrix(contract: FeatureContract, rows: int = 4) -> np.ndarray:
    """Rows every feature of ``contract`` allows: range ends and middles, each category."""
    X = np.zeros((rows, len(contract.features)))
    for j, spec in enumerate(contract.features):
        if spec.kind is FeatureKind.CATEGORY:
            X[:, j] = [i % max(len(spec.categories), 1) for i in range(rows)]
            continue
        low = spec.min if spec.min is not None else 0.0
        high = spec.max if spec.max is not None else low + 1.0
        X[:, j] = np.linspace(low, high, rows)
    return X


def not_probabilities(scores: np.ndarray) -> np.ndarray:
    """Per score, whether it is not a probability in [0, 1] (NaN and infinities included):
    such a score is never passed on, whatever flavour returned it."""
    wrong: np.ndarray = ~np.isfinite(scores) | (scores < 0) | (scores > 1)
    return wrong


def as_scores(raw: Any, n: int, label: str) -> np.ndarray:
    """One float64 score per row from a model's output, or an error saying why not."""
    if hasattr(raw, "detach"):  # a torch tensor
        raw = raw.detach().cpu().numpy()
    if hasattr(raw, "to_numpy"):  # a pandas frame or series
        raw = raw.to_numpy()
    out = np.asarray(raw, dtype=np.float64)
    if out.ndim == 2 and out.shape[1] in (1, 2):
        out = out[:, -1]
    if out.ndim != 1 or len(out) != n:
        raise InputError(
            f"model: {label} returned output of shape {np.shape(raw)} for {n} rows; "
            "expected one probability per row (or two columns, the positive class last)",
            field="model",
        )
    return out


class XGBoostPredictor:
    kind = "xgboost"

    def __init__(self, directory: Path, threads: int) -> None:
        import mlflow.xgboost

        self._model = mlflow.xgboost.load_model(str(directory))
        # As many threads as the spec says (one per task), not every core per task.
        if hasattr(self._model, "set_params"):  # the scikit-learn API
            self._model.set_params(n_jobs=threads)
        else:
            self._model.set_param({"nthread": threads})

    def predict(self, X: np.ndarray) -> np.ndarray:
        if hasattr(self._model, "predict_proba"):
            return as_scores(self._model.predict_proba(X), len(X), "the XGBoost model")
        return as_scores(self._model.inplace_predict(X), len(X), "the XGBoost booster")


class SklearnPredictor:
    kind = "sklearn"

    def __init__(self, directory: Path) -> None:
        import mlflow.sklearn

        self._model = mlflow.sklearn.load_model(str(directory))

    def predict(self, X: np.ndarray) -> np.ndarray:
        method = getattr(self._model, "predict_proba", None) or self._model.predict
        return as_scores(method(X), len(X), "the scikit-learn model")


class PyfuncPredictor:
    """Any ``python_function`` model, PyTorch's included (MLflow's wrapper places the
    network on the GPU when the worker has one)."""

    kind = "pyfunc"

    def __init__(self, directory: Path, names: tuple[str, ...]) -> None:
        import mlflow.pyfunc

        self._model = mlflow.pyfunc.load_model(str(directory))
        self._names = list(names)
        schema = self._model.metadata.get_input_schema()
        # A tensor signature (PyTorch's exported graphs) takes an array of its own dtype.
        self._tensor: np.dtype[Any] | None = (
            np.dtype(schema.numpy_types()[0])
            if schema is not None and schema.is_tensor_spec()
            else None
        )

    def predict(self, X: np.ndarray) -> np.ndarray:
        import pandas as pd

        given: Any = (
            X.astype(self._tensor)
            if self._tensor is not None
            else pd.DataFrame(X, columns=self._names)
        )
        return as_scores(self._model.predict(given), len(X), "the pyfunc model")


def build_native(
    flavor: str, directory: Path, names: tuple[str, ...], threads: int
) -> XGBoostPredictor | SklearnPredictor | PyfuncPredictor:
    """The predictor of a model directory in its own flavour."""
    if flavor == "xgboost":
        return XGBoostPredictor(directory, threads)
    if flavor == "sklearn":
        return SklearnPredictor(directory)
    return PyfuncPredictor(directory, names)
