"""``sluice bench batch``'s PyTorch part: a model brought from outside, scored by the job
in a Ray Data actor pool, against the same model's bare ``predict`` in one process.

A small network (missing values read as 0, two hidden layers) is trained on the bench's
propensity features and saved as an MLflow PyTorch model (MLflow's default exported
graph), then registered with ``sluice models register``'s code path, asking for one GPU
per actor when this machine has one. (a) is a fresh ``sluice score`` process scoring the
audience with it; (b) loads the same MLflow model in this process and predicts the same
validated rows, already in memory, in the batches the job's actors get (one Parquet row
group, 65,536 rows), on the same device. Preparation (training, registration) is not timed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from sluice.settings import SluiceSettings

MODEL = "bench-torch"
BATCH_ROWS = 65_536


@dataclass(frozen=True)
class TorchBatchBench:
    rows: int
    device: str
    job_seconds: float
    job_rows_per_s: float
    bare_seconds: float
    bare_rows_per_s: float
    ratio: float


def _train(train: Path, directory: Path) -> None:
    import mlflow.pytorch
    import torch
    from mlflow.models import infer_signature

    from sluice.contracts import PROPENSITY_V1

    table = pq.read_table(train)
    checked = PROPENSITY_V1.validate_batch(table)
    X = checked.matrix
    y = table.column("label").to_numpy()[checked.rows].astype(np.float32)
    scale = torch.from_numpy((np.abs(X).max(axis=0) + 1.0).astype(np.float32))

    class Network(torch.nn.Module):
        """Scales the contract's columns, reads a missing value as 0, then two hidden
        layers. Saved as an exported graph, so loading it needs no Python class."""

        def __init__(self) -> None:
            super().__init__()
            self.scale: torch.Tensor
            self.register_buffer("scale", scale)
            self.layers = torch.nn.Sequential(
                torch.nn.Linear(X.shape[1], 64),
                torch.nn.ReLU(),
                torch.nn.Linear(64, 32),
                torch.nn.ReLU(),
                torch.nn.Linear(32, 1),
                torch.nn.Sigmoid(),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.layers(torch.nan_to_num(x / self.scale))
            return out

    torch.manual_seed(0)
    net = Network()
    inputs = torch.from_numpy(X.astype(np.float32))
    target = torch.from_numpy(y).unsqueeze(1)
    optimiser = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(30):
        optimiser.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy(net(inputs), target)
        loss.backward()  # type: ignore[no-untyped-call]
        optimiser.step()
    net.eval()
    example = X[:8].astype(np.float32)  # with missing values: the graph keeps nan_to_num
    mlflow.pytorch.save_model(
        net,
        str(directory),
        signature=infer_signature(example, np.zeros((8, 1), np.float32)),
        input_example=example,
    )


def _bare(audience: Path, directory: Path) -> tuple[float, int]:
    import mlflow.pyfunc

    from sluice.contracts import PROPENSITY_V1

    model = mlflow.pyfunc.load_model(str(directory))
    X = PROPENSITY_V1.validate_batch(pq.read_table(audience)).matrix.astype(np.float32)
    model.predict(X[:BATCH_ROWS])  # warm-up
    started = time.perf_counter()
    for start in range(0, len(X), BATCH_ROWS):
        model.predict(X[start : start + BATCH_ROWS])
    return time.perf_counter() - started, len(X)


def run_torch_bench(
    work: Path,
    settings: SluiceSettings,
    audience: Path,
    rows: int,
    score: Any,
) -> TorchBatchBench:
    """``score(audience, out, model)`` runs the job as a fresh process and returns its
    report (see :func:`sluice.bench.batch.run_batch_bench`)."""
    import torch

    from sluice.approval.register import register_model
    from sluice.contracts import PROPENSITY_V1
    from sluice.registry import Registry

    device = "cuda" if torch.cuda.is_available() else "cpu"
    directory = work / "torch-model"
    _train(work / "train.parquet", directory)
    register_model(
        Registry(settings),
        str(directory),
        PROPENSITY_V1,
        name=MODEL,
        num_gpus=1.0 if device == "cuda" else 0.0,
    )
    report = score(audience, work / "out-torch", f"{MODEL}@challenger")
    if report["scored"] + report["quarantined"] != rows:
        raise RuntimeError(f"the PyTorch job accounted for {report} of {rows} rows")
    job_s = float(report["seconds"])
    bare_s, bare_rows = _bare(audience, directory)
    job_rps, bare_rps = rows / job_s, bare_rows / bare_s
    return TorchBatchBench(
        rows=rows,
        device=device,
        job_seconds=round(job_s, 2),
        job_rows_per_s=round(job_rps),
        bare_seconds=round(bare_s, 2),
        bare_rows_per_s=round(bare_rps),
        ratio=round(job_rps / bare_rps, 3),
    )
