"""Scoring one Arrow batch: validate against the contract, predict, label every row.

This is the function every Ray Data task runs. It returns one table holding scored
rows (``reason`` null) and quarantined rows (``score`` null, ``reason`` set); the
datasink writes them to separate files, so nothing is read twice and nothing is lost.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from sluice.contracts.arrow_validation import QUARANTINE_SCHEMA
from sluice.contracts.feature_contract import FeatureContract
from sluice.scoring.flavor_predictors import not_probabilities
from sluice.scoring.predictor import PredictorSpec

TS = pa.timestamp("us", tz="UTC")
ROW_SCHEMA = pa.schema(
    [
        pa.field("customer_id", pa.string()),
        pa.field("score", pa.float64()),
        pa.field("model_name", pa.string()),
        pa.field("model_version", pa.string()),
        pa.field("scored_at", TS),
        pa.field("reason", pa.string()),
        pa.field("record", pa.string()),
    ]
)
SCORE_COLUMNS = ("customer_id", "score", "model_name", "model_version", "scored_at")
QUARANTINE_COLUMNS = ("customer_id", "reason", "record", "model_name", "model_version", "scored_at")


@dataclass(frozen=True)
class ScoringTask:
    """What every task needs: the pinned model version, its contract, its predictor."""

    model_name: str
    model_version: str
    contract: FeatureContract
    predictor: PredictorSpec


def _constant(value: str, n: int) -> pa.Array:
    return pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(n, dtype=np.int32)), pa.array([value])
    ).cast(pa.string())


def _quarantine_scores(
    ids: pa.Array,
    quarantine: pa.Table,
    scores: np.ndarray,
    wrong: np.ndarray,
    matrix: np.ndarray,
    task: ScoringTask,
) -> tuple[pa.Array, pa.Table, np.ndarray]:
    """Move the rows whose score is not a probability to the quarantine."""
    names = task.contract.names
    bad = np.flatnonzero(wrong)
    rows = pa.table(
        {
            "customer_id": ids.take(pa.array(bad)).cast(pa.string()),
            "reason": [
                f"score: model {task.model_name}/{task.model_version} returned "
                f"{float(scores[i])!r}, not a probability in [0, 1]"
                for i in bad
            ],
            "record": [json.dumps(dict(zip(names, matrix[i].tolist(), strict=True))) for i in bad],
        }
    )
    keep = pa.array(np.flatnonzero(~wrong))
    merged = pa.concat_tables([quarantine, rows.cast(QUARANTINE_SCHEMA)])
    return ids.take(keep), merged, scores[~wrong]


def score_batch(batch: pa.Table, task: ScoringTask) -> pa.Table:
    """Scores for the valid rows of ``batch`` and quarantine rows for the rest."""
    checked = task.contract.validate_batch(batch)
    scores = task.predictor.build().predict(checked.matrix) if checked.n_valid else np.empty(0)
    ids, q = checked.ids, checked.quarantine
    wrong = not_probabilities(scores)
    if wrong.any():  # a model of another flavour may return anything: never pass it on
        ids, q, scores = _quarantine_scores(ids, q, scores, wrong, checked.matrix, task)
    n_ok, n_bad = len(ids), q.num_rows
    n = n_ok + n_bad
    now = pa.scalar(datetime.now(UTC), TS)
    return pa.table(
        {
            "customer_id": pa.concat_arrays([ids, q.column("customer_id").combine_chunks()]),
            "score": pa.concat_arrays(
                [pa.array(scores, pa.float64()), pa.nulls(n_bad, pa.float64())]
            ),
            "model_name": _constant(task.model_name, n),
            "model_version": _constant(task.model_version, n),
            "scored_at": pa.array(np.full(n, now.value, dtype=np.int64)).cast(TS),
            "reason": pa.concat_arrays(
                [pa.nulls(n_ok, pa.string()), q.column("reason").combine_chunks()]
            ),
            "record": pa.concat_arrays(
                [pa.nulls(n_ok, pa.string()), q.column("record").combine_chunks()]
            ),
        },
        schema=ROW_SCHEMA,
    )


class ScoreActor:
    """:func:`score_batch` in an actor that loads the model once (Ray Data's actor pools
    score the flavours that are heavy to load or want a GPU)."""

    def __init__(self, task: ScoringTask) -> None:
        self.task = task
        task.predictor.build()

    def __call__(self, batch: pa.Table) -> pa.Table:
        return score_batch(batch, self.task)
