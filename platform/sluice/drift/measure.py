"""Drift of a scoring run: PSI of every feature and of the score against the model's
training reference, stored per run and model version (``run_drift``).

Features are read back once from the audience Parquet (valid rows only, at most
``MAX_ROWS``), encoded with the feature contract (the canary model shares it) and binned
with each reference's edges; scores come from the run's staged candidates (per arm: the canary
arm is scored by the canary model).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow.parquet as pq

from sluice.contracts.feature_contract import FeatureContract
from sluice.contracts.feedback import DriftRow
from sluice.drift.reference import Binning, Reference, psi
from sluice.store.db import connect
from sluice.store.drift import store_drift

MAX_ROWS = 500_000


class Measured(Protocol):
    """A model version with its training reference (a loaded registry model is one)."""

    @property
    def version(self) -> str: ...
    @property
    def contract(self) -> FeatureContract: ...
    @property
    def reference(self) -> Reference | None: ...


def level(value: float, warn: float, block: float) -> str:
    return "block" if value >= block else "warn" if value >= warn else "ok"


def _files(path: Path) -> list[Path]:
    return [path] if path.is_file() else sorted(p for p in path.rglob("*.parquet") if p.is_file())


def feature_histograms(
    features: Path, contract: FeatureContract, refs: list[Reference]
) -> list[list[np.ndarray]]:
    """Counts per bucket of each feature of the valid audience rows (sampled), under each
    reference's binning: one read of the audience, whatever the number of models."""
    counts = [[np.zeros(len(b.proportions)) for b in ref.features] for ref in refs]
    names = [contract.id_column, *contract.names]
    seen = 0
    for file in _files(features):
        pf = pq.ParquetFile(file)
        present = [n for n in names if n in pf.schema_arrow.names]
        for batch in pf.iter_batches(batch_size=65_536, columns=present):
            checked = contract.validate_batch(batch)
            if not checked.n_valid:
                continue
            for ref, ref_counts in zip(refs, counts, strict=True):
                for j, binning in enumerate(ref.features):
                    ref_counts[j] += binning.histogram(checked.matrix[:, j]) * checked.n_valid
            seen += checked.n_valid
            if seen >= MAX_ROWS:
                return counts
    return counts


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else counts


@dataclass(frozen=True)
class DriftLimits:
    """PSI levels: ``warn`` reports a variable as drifted, ``block`` stops a promotion."""

    warn: float = 0.1
    block: float = 0.25


def drift_rows(
    ref: Reference, feature_counts: list[np.ndarray], scores: np.ndarray, limits: DriftLimits
) -> list[DriftRow]:
    rows: list[DriftRow] = []
    pairs: list[tuple[Binning, np.ndarray]] = list(
        zip(ref.features, (_shares(c) for c in feature_counts), strict=True)
    )
    if len(scores):
        pairs.append((ref.score, ref.score.histogram(scores)))
    for binning, shares in pairs:
        if not shares.sum():
            continue
        value = psi(binning.proportions, shares)
        rows.append(
            DriftRow(
                variable=binning.name,
                psi=round(value, 6),
                level=level(value, limits.warn, limits.block),  # type: ignore[arg-type]
            )
        )
    return rows


def measure_run_drift(
    run_id: str,
    features: Path,
    candidates: Path,
    model: Measured,
    canary: Measured | None,
    database_url: str,
    limits: DriftLimits,
) -> dict[str, list[DriftRow]]:
    """Measure and store the run's drift for its model (and canary model)."""
    arms = (
        pq.read_table(candidates, columns=["arm", "score"])
        if candidates.exists() and any(candidates.iterdir())
        else None
    )
    measured = [
        (m, wanted)
        for m, wanted in ((model, ("holdout", "main")), (canary, ("canary",)))
        if m is not None and m.reference is not None
    ]
    if not measured:
        return {}
    arm = score = np.empty(0)
    if arms is not None:
        arm = np.asarray(arms.column("arm").to_numpy(zero_copy_only=False))
        score = arms.column("score").to_numpy(zero_copy_only=False).astype(np.float64)
    references = [m.reference for m, _ in measured if m.reference is not None]
    histograms = feature_histograms(features, model.contract, references)
    out: dict[str, list[DriftRow]] = {}
    for (m, wanted), ref, counts in zip(measured, references, histograms, strict=True):
        scores = score[np.isin(arm, wanted) & ~np.isnan(score)] if len(arm) else np.empty(0)
        rows = drift_rows(ref, counts, scores, limits)
        store_drift(connect(database_url), run_id, m.version, rows)
        out[m.version] = rows
    return out
