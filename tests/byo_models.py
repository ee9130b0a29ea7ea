"""Models trained outside Sluice, one per flavour, on a contract that is not built in.

``churn-lite@1.0.0`` has three numbers and a category; :func:`churn_table` draws a
labelled table for it, and :func:`save_model` trains a small model of a flavour on it and
saves it as an MLflow model directory, returning the flavour's own predict for checks.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sluice.contracts.contract_files import parse_contract
from sluice.contracts.feature_contract import FeatureContract

FLAVOURS = ("lightgbm", "xgboost", "sklearn", "pytorch")
CONTRACT_YAML = """\
name: churn-lite
version: 1.0.0
id_column: customer_id
features:
  - name: orders_90d
    kind: int
    description: Orders in the 90 days before the cutoff.
    min: 0
    max: 500
  - name: spend_90d
    kind: float
    description: Spend in the 90 days before the cutoff.
    min: 0
    max: 100000
  - name: days_since_last
    kind: float
    description: Days since the last order; missing if none.
    min: 0
    max: 3650
    nulls: missing
  - name: plan
    kind: category
    description: Subscription plan at the cutoff.
    categories: [basic, plus, pro]
"""
CONTRACT: FeatureContract = parse_contract(__import__("yaml").safe_load(CONTRACT_YAML))
NAMES = CONTRACT.names
Predict = Callable[[np.ndarray], np.ndarray]


def churn_table(n: int, seed: int = 0) -> pa.Table:
    """``n`` labelled rows that satisfy the contract (with some missing recencies)."""
    rng = np.random.default_rng(seed)
    orders = rng.poisson(3, n)
    spend = np.round(orders * rng.gamma(2.0, 20.0, n), 2)
    days = rng.exponential(60, n).clip(0, 3650)
    days[rng.random(n) < 0.05] = np.nan
    plan = rng.choice(["basic", "plus", "pro"], n, p=[0.6, 0.3, 0.1])
    logit = 0.4 * orders - 0.02 * np.nan_to_num(days, nan=365) + (plan == "pro") - 0.5
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    return pa.table(
        {
            "customer_id": [f"c{seed}-{i:06d}" for i in range(n)],
            "orders_90d": pa.array(orders, pa.int64()),
            "spend_90d": spend,
            "days_since_last": pa.array(days, pa.float64(), mask=np.isnan(days)),
            "plan": plan,
            "label": label,
        }
    )


def write_table(table: pa.Table, path: Path) -> Path:
    pq.write_table(table, path)
    return path


def _training_data(n: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    table = churn_table(n, seed=1)
    checked = CONTRACT.validate_batch(table)
    y = table.column("label").to_numpy()[checked.rows]
    return checked.matrix, y


def save_model(flavor: str, directory: Path) -> Predict:
    """Train a small ``flavor`` model on the contract's encoded matrix, save it as an MLflow
    model in ``directory`` (with a column signature), and return its own predict."""
    from mlflow.models import infer_signature

    X, y = _training_data()
    frame = pd.DataFrame(X, columns=list(NAMES))
    if flavor == "lightgbm":
        import lightgbm as lgb
        import mlflow.lightgbm

        lgbm = lgb.LGBMClassifier(n_estimators=30, num_leaves=8, verbose=-1).fit(X, y)
        signature = infer_signature(frame, lgbm.predict_proba(X)[:, 1])
        mlflow.lightgbm.save_model(lgbm, str(directory), signature=signature)
        return lambda M: np.asarray(lgbm.predict_proba(M)[:, 1])
    if flavor == "xgboost":
        import mlflow.xgboost
        import xgboost as xgb

        xgbm = xgb.XGBClassifier(n_estimators=30, max_depth=3, n_jobs=1).fit(X, y)
        signature = infer_signature(frame, xgbm.predict_proba(X)[:, 1])
        mlflow.xgboost.save_model(xgbm, str(directory), signature=signature)
        return lambda M: np.asarray(xgbm.predict_proba(M)[:, 1])
    if flavor == "sklearn":
        import mlflow.sklearn
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        pipe = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression()).fit(X, y)
        signature = infer_signature(frame, pipe.predict_proba(X)[:, 1])
        mlflow.sklearn.save_model(
            pipe, str(directory), signature=signature, skops_trusted_types=["numpy.dtype"]
        )
        return lambda M: np.asarray(pipe.predict_proba(M)[:, 1])
    if flavor == "pytorch":
        import mlflow.pytorch
        import torch

        torch.manual_seed(0)
        scale = np.nanmax(np.abs(X), axis=0) + 1.0
        first = torch.nn.Linear(len(NAMES), 8)
        model = torch.nn.Sequential(
            first, torch.nn.ReLU(), torch.nn.Linear(8, 1), torch.nn.Sigmoid()
        )
        inputs = torch.from_numpy((np.nan_to_num(X) / scale).astype(np.float32))
        target = torch.from_numpy(y.astype(np.float32)).unsqueeze(1)
        optimiser = torch.optim.Adam(model.parameters(), lr=0.05)
        for _ in range(60):
            optimiser.zero_grad()
            torch.nn.functional.binary_cross_entropy(model(inputs), target).backward()
            optimiser.step()
        with torch.no_grad():  # the network takes raw contract columns: fold the scaling in
            first.weight /= torch.from_numpy(scale.astype(np.float32))
        model.eval()
        example = np.nan_to_num(X[:4]).astype(np.float32)
        # MLflow's default (pt2, an exported graph) takes a tensor signature, no names.
        signature = infer_signature(example, np.zeros((4, 1), np.float32))
        mlflow.pytorch.save_model(model, str(directory), signature=signature, input_example=example)

        def own(M: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                out = model(torch.from_numpy(M.astype(np.float32)))
            return out.numpy()[:, 0].astype(np.float64)

        return own
    raise ValueError(f"unknown flavour {flavor}")
