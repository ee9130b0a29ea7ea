"""The batch-scoring job: Parquet audience in, scores and quarantine out, via Ray Data.

The model is resolved once (an alias becomes a concrete version recorded on every
row), its predictor prepared once on the driver, and the read, validate+score and
write steps fuse into one streaming stage: blocks flow from Parquet through the model
into the sink without the audience ever being held in memory as a whole. PyTorch and
pyfunc models score in an actor pool instead (each actor loads the model once), with the
GPUs per actor the version was registered with.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sluice.errors import ConflictError, InputError
from sluice.registry.flavors import POOLED
from sluice.registry.loaded import LoadedModel
from sluice.registry.registry import Registry
from sluice.scoring.batch import ScoreActor, ScoringTask, score_batch
from sluice.scoring.predictor import PredictorMode, PredictorSpec, prepare_predictor


@dataclass(frozen=True)
class ScoreRequest:
    """One scoring run."""

    audience: str
    """Parquet file or directory (local path or any URI pyarrow reads)."""
    model: str
    """``NAME@ALIAS`` or ``NAME/VERSION``."""
    out: Path
    """Output directory."""
    predictor: PredictorMode = "auto"
    overwrite: bool = False
    progress: bool = True


@dataclass(frozen=True)
class ScoreReport:
    """What the run did; the CLI prints it and ends with it as JSON."""

    scored: int
    quarantined: int
    seconds: float
    rows_per_s: float
    model_name: str
    model_version: str
    predictor: str
    out: str
    reasons: dict[str, int] = field(default_factory=dict)
    """Quarantined rows per field at fault."""
    unreadable_files: dict[str, str] = field(default_factory=dict)
    """Files that could not be opened as Parquet, with the error."""


def _prepare_out(out: Path, overwrite: bool) -> None:
    existing = [p for p in (out / "scores", out / "quarantine", out / "summary.json") if p.exists()]
    if existing and not overwrite:
        raise ConflictError(
            f"--out: {out} already holds a scoring run; pass --overwrite to replace it", field="out"
        )
    for p in existing:
        shutil.rmtree(p) if p.is_dir() else p.unlink()


def _configure_progress(wanted: bool) -> None:
    """Rich progress bars on an interactive terminal; otherwise only warnings."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    interactive = wanted and sys.stdout.isatty()
    ctx.enable_progress_bars = interactive
    ctx.enable_rich_progress_bars = interactive
    ctx.use_ray_tqdm = False
    if not interactive:
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)


def _load(
    request: ScoreRequest, registry: Registry, model: LoadedModel | None
) -> tuple[LoadedModel, PredictorSpec]:
    loaded = model or registry.load(request.model)
    cache = registry.settings.home_dir / "cache" / "compiled"
    return loaded, prepare_predictor(loaded, request.predictor, cache)


def _warm_workers() -> None:
    """Have idle workers import the scoring code now rather than in the first tasks."""
    import ray

    @ray.remote(num_cpus=1)
    def warm() -> None:
        import ray.data  # noqa: F401  (pulls pandas and pyarrow, as every data task does)

        import sluice.scoring.batch  # noqa: F401

    cpus = int(ray.cluster_resources().get("CPU", 1))
    for _ in range(cpus):
        warm.remote()


def _pool_size(spec: PredictorSpec) -> int:
    """Actors for a pooled flavour: one per CPU, or as many as the GPUs allow."""
    import ray

    resources = ray.cluster_resources()
    if spec.num_gpus:
        gpus = float(resources.get("GPU", 0))
        if gpus < spec.num_gpus:
            raise InputError(
                f"model: this version asks for {spec.num_gpus:g} GPU(s) per scoring actor; "
                f"the cluster has {gpus:g}",
                field="model",
            )
        return max(1, int(gpus // spec.num_gpus))
    return max(1, int(resources.get("CPU", 1)))


def run_scoring(
    request: ScoreRequest, registry: Registry, model: LoadedModel | None = None
) -> ScoreReport:
    """Score the audience with the model, resolved once; see the module docstring."""
    import ray.data

    from sluice.runtime import ensure_ray
    from sluice.scoring.audience_source import AudienceDatasource, list_audience
    from sluice.scoring.sink import ScoreSink

    started = time.perf_counter()
    _prepare_out(request.out, request.overwrite)
    # Ray's start-up mostly waits on its daemons: resolve and load the model meanwhile.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(_load, request, registry, model)
        ensure_ray()
        _warm_workers()
        loaded, spec = pending.result()
    task = ScoringTask(loaded.name, loaded.version, loaded.contract, spec)
    _configure_progress(request.progress)
    listing = list_audience(
        request.audience, target_tasks=4 * max(int(ray.cluster_resources().get("CPU", 1)), 1)
    )
    contract = loaded.contract
    source = AudienceDatasource(listing, (contract.id_column, *contract.names), contract.id_column)
    # One block per fragment: Ray Data would otherwise split blocks to reach its default
    # parallelism, which stops read, score and write from fusing into one task.
    ds = ray.data.read_datasource(source, override_num_blocks=max(len(listing.fragments), 1))
    if loaded.flavor in POOLED:
        scored = ds.map_batches(
            ScoreActor,
            fn_constructor_kwargs={"task": task},
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=_pool_size(spec)),
            num_cpus=1,
            num_gpus=spec.num_gpus or None,
            batch_format="pyarrow",
            batch_size=None,
            zero_copy_batch=True,
        )
    else:
        scored = ds.map_batches(
            score_batch,
            fn_kwargs={"task": task},
            batch_format="pyarrow",
            batch_size=None,
            zero_copy_batch=True,
        )
    sink = ScoreSink(request.out)
    scored.write_datasink(sink)
    report = sink.report
    seconds = time.perf_counter() - started
    total = report.scored + report.quarantined
    return ScoreReport(
        scored=report.scored,
        quarantined=report.quarantined,
        seconds=round(seconds, 3),
        rows_per_s=round(total / seconds, 1) if seconds > 0 else 0.0,
        model_name=loaded.name,
        model_version=loaded.version,
        predictor=spec.kind,
        out=str(request.out),
        reasons=report.reasons,
        unreadable_files=listing.unreadable,
    )
