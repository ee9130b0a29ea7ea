"""Evaluation of a binary propensity model: ranking, calibration and lift."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score


@dataclass(frozen=True)
class CalibrationBin:
    lower: float
    upper: float
    count: int
    mean_predicted: float
    observed_rate: float


@dataclass(frozen=True)
class LiftDecile:
    decile: int
    """1 = the highest-scored tenth."""
    count: int
    positives: int
    rate: float
    lift: float
    """Rate over the overall base rate."""
    cumulative_gain: float
    """Share of all positives captured down to this decile."""


@dataclass(frozen=True)
class Evaluation:
    roc_auc: float
    pr_auc: float
    log_loss: float
    brier: float
    base_rate: float
    count: int
    calibration: tuple[CalibrationBin, ...]
    lift: tuple[LiftDecile, ...]

    def scalars(self) -> dict[str, float]:
        """The metrics MLflow logs as numbers (and promotion floors refer to)."""
        return {
            "roc_auc": self.roc_auc,
            "pr_auc": self.pr_auc,
            "log_loss": self.log_loss,
            "brier": self.brier,
            "base_rate": self.base_rate,
            "top_decile_lift": self.lift[0].lift if self.lift else float("nan"),
        }

    def tables(self) -> dict[str, list[dict[str, float | int]]]:
        return {
            "calibration": [asdict(b) for b in self.calibration],
            "lift": [asdict(d) for d in self.lift],
        }


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> tuple[CalibrationBin, ...]:
    """Equal-width bins of predicted probability with the observed rate in each."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    out = []
    for b in range(bins):
        m = which == b
        n = int(m.sum())
        out.append(
            CalibrationBin(
                lower=float(edges[b]),
                upper=float(edges[b + 1]),
                count=n,
                mean_predicted=float(p[m].mean()) if n else float("nan"),
                observed_rate=float(y[m].mean()) if n else float("nan"),
            )
        )
    return tuple(out)


def lift_table(y: np.ndarray, p: np.ndarray, groups: int = 10) -> tuple[LiftDecile, ...]:
    """Customers sorted by score (ties by position), cut into equal groups."""
    order = np.argsort(-p, kind="stable")
    ys = y[order]
    base = float(y.mean()) if len(y) else 0.0
    total = float(ys.sum())
    out, captured = [], 0.0
    for d, chunk in enumerate(np.array_split(ys, groups), start=1):
        pos = float(chunk.sum())
        captured += pos
        rate = pos / len(chunk) if len(chunk) else 0.0
        out.append(
            LiftDecile(
                decile=d,
                count=len(chunk),
                positives=int(pos),
                rate=rate,
                lift=rate / base if base > 0 else float("nan"),
                cumulative_gain=captured / total if total > 0 else float("nan"),
            )
        )
    return tuple(out)


def evaluate(y: np.ndarray, p: np.ndarray) -> Evaluation:
    """All metrics of scores ``p`` against binary labels ``y``."""
    y = np.asarray(y, dtype=np.int64)
    p = np.asarray(p, dtype=np.float64)
    if len(np.unique(y)) < 2:
        raise ValueError("label: evaluation needs both classes in the validation set")
    return Evaluation(
        roc_auc=float(roc_auc_score(y, p)),
        pr_auc=float(average_precision_score(y, p)),
        log_loss=float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15))),
        brier=float(brier_score_loss(y, p)),
        base_rate=float(y.mean()),
        count=len(y),
        calibration=calibration_table(y, p),
        lift=lift_table(y, p),
    )
