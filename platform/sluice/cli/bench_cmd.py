"""``sluice bench ...``: each benchmark prints a table, then one JSON line of figures."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from sluice.cli.output import console, emit_json, table

app = typer.Typer(
    help="Benchmarks: ratios against a baseline measured in the same run.", no_args_is_help=True
)


def _workdir(given: Path | None, name: str) -> Path:
    from sluice.settings import get_settings

    return given or get_settings().home_dir / "bench" / name


@app.command("batch")
def batch(
    customers: Annotated[
        int, typer.Option(min=100_000, help="Rows the timed job scores.")
    ] = 2_000_000,
    workdir: Annotated[Path | None, typer.Option(help="Scratch directory (replaced).")] = None,
) -> None:
    """Scoring job (Parquet to Parquet, Ray start-up included) vs bare Booster.predict."""
    from sluice.bench.batch import run_batch_bench

    r = run_batch_bench(customers, _workdir(workdir, "batch"))
    console.print(
        table(
            f"Batch scoring, {r.rows:,} rows ({r.trees} trees, {r.predictor} predictor)",
            ["", "seconds", "rows/s"],
            [
                ["(a) scoring job incl. Ray start-up", r.job_seconds, f"{r.job_rows_per_s:,}"],
                [
                    "    whole `sluice score` process",
                    r.process_seconds,
                    f"{round(r.rows / r.process_seconds):,}",
                ],
                ["(b) bare Booster.predict, all cores", r.bare_seconds, f"{r.bare_rows_per_s:,}"],
                ["ratio a/b (target >= 0.5)", "", f"{r.ratio:.3f}"],
                ["peak memory at 1M rows (MiB)", "", r.peak_mem_1m_mb],
                ["peak memory at 4M rows (MiB)", "", r.peak_mem_4m_mb],
                ["4M/1M memory (target <= 1.5)", "", f"{r.mem_ratio:.3f}"],
                ["one-off model compile (s)", r.compile_s, ""],
            ],
        )
    )
    emit_json(asdict(r))


@app.command("online")
def online(
    seconds: Annotated[float, typer.Option(min=5, help="Measured seconds per server.")] = 30,
    concurrency: Annotated[
        int, typer.Option(min=1, help="Connections with one request in flight each.")
    ] = 8,
    config: Annotated[Path, typer.Option(help="Serve config of the Sluice app.")] = Path(
        "deployments/decision.yaml"
    ),
    workdir: Annotated[Path | None, typer.Option(help="Scratch directory (replaced).")] = None,
) -> None:
    """The Serve app vs the same API in one uvicorn process: rps, p50, p99."""
    from sluice.bench.online import run_online_bench

    r = run_online_bench(seconds, concurrency, _workdir(workdir, "online"), config)
    console.print(
        table(
            f"Online /v1/score, one customer per request, {r.concurrency} connections, "
            f"{r.seconds:g} s each",
            ["", "rps", "p50 ms", "p99 ms", "errors"],
            [
                [
                    "(a) same API in one uvicorn process",
                    r.bare_rps,
                    r.bare_p50_ms,
                    r.bare_p99_ms,
                    r.bare_errors,
                ],
                [
                    "(b) Sluice on Ray Serve (fast path)",
                    r.sluice_rps,
                    r.sluice_p50_ms,
                    r.sluice_p99_ms,
                    r.sluice_errors,
                ],
                ["ratio b/a (targets: rps >= 0.7, p99 <= 1.5)", r.ratio_rps, "", r.ratio_p99, ""],
            ],
        )
    )
    emit_json(asdict(r))
