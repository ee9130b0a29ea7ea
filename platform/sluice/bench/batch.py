"""``sluice bench batch``: the scoring job against bare ``Booster.predict``.

In one run, on the same rows: (a) the batch-scoring job, Parquet to Parquet, run as a
fresh ``sluice score`` process so that Ray starts cold; its time is the job's own wall
time (model resolution, Ray start-up, read, validate, predict, write), and the whole
process time (adding interpreter start, imports and shutdown) is reported beside it;
(b) LightGBM's ``Booster.predict`` on the same rows already in memory, with all cores.
It also runs the job on 1M and 4M rows while sampling the memory of the whole process
tree (driver, Ray daemons, workers). Setup (a synthetic base, a trained and promoted
model, its compiled library) is not timed; compiling is a once-per-model-version step,
reported separately. Then a PyTorch model brought from outside is scored by the job in
an actor pool against its own bare predict (:mod:`sluice.bench.batch_torch`).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sluice.bench.batch_torch import TorchBatchBench, run_torch_bench
from sluice.bench.procmem import run_measured

if TYPE_CHECKING:
    from sluice.settings import SluiceSettings

ROWS_PER_FILE = 250_000
BASE_CUSTOMERS = 100_000


@dataclass(frozen=True)
class BatchBench:
    rows: int
    job_seconds: float
    """The job's own wall time: model resolution, Ray start-up, read, validate, score, write."""
    process_seconds: float
    """The whole ``sluice score`` process, adding interpreter start, imports and Ray shutdown."""
    job_rows_per_s: float
    bare_seconds: float
    bare_rows_per_s: float
    ratio: float
    peak_mem_1m_mb: float
    peak_mem_4m_mb: float
    mem_ratio: float
    predictor: str
    trees: int
    compile_s: float
    pytorch: TorchBatchBench
    """A PyTorch model in an actor pool against its bare predict (same rows)."""


def scratch_settings(home: Path) -> SluiceSettings:
    """The settings of a benchmark: the caller's, with its own scratch home (and so its
    own registry, database and keys). Child processes get the same through
    :func:`scratch_env`."""
    from sluice.settings import get_settings

    return get_settings().model_copy(update={"home": home})


def scratch_env(settings: SluiceSettings) -> dict[str, str]:
    """The environment of a benchmark's child processes: this one's without its own
    ``SLUICE_*`` variables, and ``settings`` (home, stores, clock) in their place."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    env.update(
        SLUICE_HOME=str(settings.home_dir),
        SLUICE_API_KEYS_FILE=str(settings.home_dir / "api-keys.json"),
        COLUMNS="120",
    )
    for name, value in (
        ("SLUICE_DATABASE_URL", settings.database_url),
        ("SLUICE_TRACKING_URI", settings.tracking_uri),
        ("SLUICE_REGISTRY_URI", settings.registry_uri),
        ("SLUICE_ONLINE_STORE_URL", settings.online_store_url),
    ):
        if value:
            env[name] = value
    offset = settings.clock_offset.total_seconds()
    if offset:
        env["SLUICE_CLOCK_OFFSET"] = f"{'-' if offset < 0 else ''}PT{abs(offset)}S"
    return env


def _prepare(work: Path, settings: SluiceSettings) -> tuple[float, int]:
    """Synthetic base, trained + promoted model and compiled library in ``work/home``."""
    from sluice.data import SynthCalendar, SynthConfig, synthesize
    from sluice.features import write_synthetic_features
    from sluice.registry import Registry
    from sluice.scoring.predictor import prepare_predictor
    from sluice.training import TrainConfig, train

    data = work / "data"
    cal = SynthCalendar.today(settings.clock)
    synthesize(SynthConfig(customers=BASE_CUSTOMERS, seed=21, end=cal.history_end), data)
    for name, cutoff in (
        ("train", cal.train_cutoff),
        ("valid", cal.valid_cutoff),
        ("audience", cal.score_cutoff),
    ):
        write_synthetic_features(data, cutoff, work / f"{name}.parquet")
    trained = train(work / "train.parquet", work / "valid.parquet", TrainConfig())
    registry = Registry(settings)
    info = registry.register(trained)
    registry.promote(info.version, floors={}, ceilings={}, by="bench")
    started = time.perf_counter()
    prepare_predictor(
        registry.load("sluice-propensity@champion"),
        "auto",
        settings.home_dir / "cache" / "compiled",
    )
    return time.perf_counter() - started, trained.booster.num_trees()


def _audiences(work: Path, sizes: list[int]) -> dict[int, Path]:
    """Tile the audience features to ``max(sizes)`` rows (unique ids) in 250k-row files;
    each size gets a directory of hard links to its first files."""
    base = pq.read_table(work / "audience.parquet")
    parts = work / "parts"
    parts.mkdir(exist_ok=True)
    total = max(sizes)
    files: list[Path] = []
    made = 0
    while made < total:
        n = min(ROWS_PER_FILE, total - made)
        reps = -(-n // base.num_rows)
        tiles = []
        for r in range(reps):
            ids = pc.binary_join_element_wise(
                base.column("customer_id"), pa.scalar(f"-{len(files)}-{r}"), ""
            )
            tiles.append(base.set_column(0, "customer_id", ids))
        path = parts / f"part-{len(files):03d}.parquet"
        pq.write_table(pa.concat_tables(tiles).slice(0, n), path, row_group_size=65_536)
        files.append(path)
        made += n
    out: dict[int, Path] = {}
    for size in sizes:
        d = work / f"audience-{size}"
        d.mkdir(exist_ok=True)
        rows = 0
        for f in files:
            if rows >= size:
                break
            os.link(f, d / f.name)
            rows += pq.read_metadata(f).num_rows
        out[size] = d
    return out


def _job(
    audience: Path, out: Path, env: dict[str, str], model: str | None = None
) -> tuple[float, int, dict[str, Any]]:
    cmd = [
        sys.executable,
        "-m",
        "sluice",
        "score",
        "--audience",
        str(audience),
        "--out",
        str(out),
        "--overwrite",
        "--no-progress",
        *(("--model", model) if model else ()),
    ]
    run = run_measured(cmd, env)
    if run.returncode != 0:
        raise RuntimeError(f"scoring job failed:\n{run.stderr[-3000:]}")
    report = json.loads(run.stdout.strip().splitlines()[-1])
    return run.seconds, run.peak_bytes, report


def _bare(audience: Path, settings: SluiceSettings) -> tuple[float, int]:
    from sluice.registry import Registry

    model = Registry(settings).load("sluice-propensity@champion")
    checked = model.contract.validate_batch(pq.read_table(audience))
    booster = model.booster()
    booster.predict(checked.matrix[:10_000], num_threads=os.cpu_count() or 1)  # warm-up
    started = time.perf_counter()
    booster.predict(checked.matrix, num_threads=os.cpu_count() or 1)
    return time.perf_counter() - started, len(checked.matrix)


def run_batch_bench(rows: int, work: Path) -> BatchBench:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    settings = scratch_settings(work / "home")
    env = scratch_env(settings)
    compile_s, trees = _prepare(work, settings)
    million = 1_000_000
    audiences = _audiences(work, sorted({rows, million, 4 * million}))

    process_s, _, report = _job(audiences[rows], work / "out", env)
    job_s = float(report["seconds"])
    if report["scored"] != rows:
        raise RuntimeError(f"the job scored {report['scored']} of {rows} rows")
    bare_s, bare_rows = _bare(audiences[rows], settings)
    _, peak_1m, _ = _job(audiences[million], work / "out-1m", env)
    _, peak_4m, _ = _job(audiences[4 * million], work / "out-4m", env)
    torch_bench = run_torch_bench(
        work,
        settings,
        audiences[rows],
        rows,
        lambda audience, out, model: _job(audience, out, env, model)[2],
    )
    job_rps, bare_rps = rows / job_s, bare_rows / bare_s
    return BatchBench(
        rows=rows,
        job_seconds=round(job_s, 2),
        process_seconds=round(process_s, 2),
        job_rows_per_s=round(job_rps),
        bare_seconds=round(bare_s, 2),
        bare_rows_per_s=round(bare_rps),
        ratio=round(job_rps / bare_rps, 3),
        peak_mem_1m_mb=round(peak_1m / 2**20, 1),
        peak_mem_4m_mb=round(peak_4m / 2**20, 1),
        mem_ratio=round(peak_4m / peak_1m, 3) if peak_1m else float("nan"),
        predictor=str(report["predictor"]),
        trees=trees,
        compile_s=round(compile_s, 2),
        pytorch=torch_bench,
    )
