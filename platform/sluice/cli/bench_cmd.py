"""``sluice bench ...``: each benchmark prints a table, then one JSON line of figures."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from sluice.cli import bench_pipeline_cmd
from sluice.cli.bench_dirs import workdir as _workdir
from sluice.cli.output import console, emit_json, table

app = typer.Typer(
    help="Benchmarks: ratios against a baseline measured in the same run.", no_args_is_help=True
)


@app.command("batch")
def batch(
    customers: Annotated[
        int, typer.Option(min=100_000, help="Rows the timed job scores.")
    ] = 2_000_000,
    workdir: Annotated[Path | None, typer.Option(help="Scratch directory (replaced).")] = None,
) -> None:
    """Scoring job (Parquet to Parquet, Ray start-up included) vs bare Booster.predict;
    then a PyTorch model in an actor pool vs its bare predict."""
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
    t = r.pytorch
    console.print(
        table(
            f"PyTorch model brought from outside, {t.rows:,} rows on {t.device}",
            ["", "seconds", "rows/s"],
            [
                ["(a) scoring job, Ray Data actor pool", t.job_seconds, f"{t.job_rows_per_s:,}"],
                ["(b) bare MLflow predict, one process", t.bare_seconds, f"{t.bare_rows_per_s:,}"],
                ["ratio a/b", "", f"{t.ratio:.3f}"],
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
    by_id: Annotated[
        bool,
        typer.Option(
            "--by-id",
            help="Decide by customer id (online store) vs decide with the features, same app.",
        ),
    ] = False,
) -> None:
    """The Serve app vs the same API in one uvicorn process: rps, p50, p99."""
    from sluice.bench.online import run_online_bench

    if by_id:
        _by_id(seconds, concurrency, config, workdir)
        return
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
    console.print(
        table(
            "Sluice on Ray Serve under rising load",
            ["connections", "rps", "p99 ms"],
            [[c, rps, p99] for c, rps, p99 in r.sweep],
        )
    )
    knee = f"{r.rps_at_p99_50ms:,.0f} rps" if r.rps_at_p99_50ms is not None else "none"
    console.print(f"highest load with p99 <= 50 ms: {knee}")
    emit_json(asdict(r))


def _by_id(seconds: float, concurrency: int, config: Path, workdir: Path | None) -> None:
    from sluice.bench.online_by_id import run_by_id_bench

    r = run_by_id_bench(seconds, concurrency, _workdir(workdir, "online-by-id"), config)
    console.print(
        table(
            f"Online /v1/decide on Ray Serve, one customer per request, {r.concurrency} "
            f"connections, {r.seconds:g} s each; online store {r.store} "
            f"({r.materialized_rows:,} rows)",
            ["", "rps", "p50 ms", "p99 ms", "errors"],
            [
                [
                    "(a) decide with the features in the request",
                    r.features_rps,
                    r.features_p50_ms,
                    r.features_p99_ms,
                    r.features_errors,
                ],
                [
                    "(b) decide by id (features from the online store)",
                    r.by_id_rps,
                    r.by_id_p50_ms,
                    r.by_id_p99_ms,
                    r.by_id_errors,
                ],
                ["ratio b/a (target: rps >= 0.8)", r.ratio_rps, "", r.ratio_p99, ""],
            ],
        )
    )
    emit_json(asdict(r))


@app.command("gates")
def gates(
    messages: Annotated[int, typer.Option(min=1_000, help="Drafts through the chain.")] = 100_000,
    variants: Annotated[int, typer.Option(min=1, max=100, help="Phrasings per copy.")] = 20,
    workdir: Annotated[Path | None, typer.Option(help="Scratch directory (replaced).")] = None,
) -> None:
    """The whole gate chain (MiniLM included) vs the compliance gates alone."""
    from sluice.bench.gates import run_gate_bench

    r = run_gate_bench(messages, variants, _workdir(workdir, "gates"))
    console.print(
        table(
            f"Gate chain, {r.messages:,} drafts ({r.distinct_texts:,} distinct texts)",
            ["", "seconds", "messages/s"],
            [
                [
                    "(a) every gate, MiniLM topics included",
                    r.gate_seconds,
                    f"{r.gate_msgs_per_s:,}",
                ],
                ["(b) compliance gates only", r.compliance_seconds, f"{r.compliance_msgs_per_s:,}"],
                ["ratio b/a time", "", r.ratio_vs_compliance],
                ["gate time for 1M recipients (s)", r.seconds_per_1m, ""],
            ],
        )
    )
    emit_json(asdict(r))


@app.command("llm")
def llm(
    config: Annotated[Path, typer.Option(help="Serve config of the LLM app.")] = Path(
        "deployments/llm-cpu.yaml"
    ),
    tokens: Annotated[int, typer.Option(min=8, help="Generated tokens per request.")] = 48,
    prompt_keys: Annotated[int, typer.Option(min=1, help="Prompt keys of the campaign.")] = 200,
    recipients: Annotated[int, typer.Option(min=1_000, help="Campaign recipients.")] = 100_000,
    workdir: Annotated[Path | None, typer.Option(help="Scratch directory (replaced).")] = None,
) -> None:
    """Serve LLM tokens/s at concurrency 1/8/32 and ray.data.llm vs bare vllm.LLM; campaign
    copy rate; share of LLM drafts that pass every gate."""
    from sluice.bench.llm import CONCURRENCY, run_llm_bench

    r = run_llm_bench(config, tokens, prompt_keys, recipients, _workdir(workdir, "llm"))
    rows: list[list[object]] = [
        [f"concurrency {c}", r.serve_tok_s[f"c{c}"], r.bare_tok_s[f"c{c}"], r.ratios[f"c{c}"]]
        for c in CONCURRENCY
    ]
    console.print(
        table(
            f"{r.model_id}: generated tokens/s, {r.tokens_per_request} tokens per request",
            ["", "(a) Ray Serve", "(b) bare vllm.LLM", "a/b (target >= 0.8 at 32)"],
            rows,
        )
    )
    console.print(
        f"campaign copy: {r.recipients:,} recipients, {r.prompt_keys} prompt keys: "
        f"generation {r.generation_s} s ({r.generated} generated, {r.fallback} fallback), "
        f"fan-out {r.fanout_s} s -> {r.copy_recipients_per_s:,} recipients with copy/s"
    )
    console.print(
        f"(c) ray.data.llm processor, batches of 32: {r.data_llm_tok_s} tokens/s "
        f"(engine start {r.data_llm_engine_start_s} s not counted), "
        f"{r.data_llm_ratio} of bare vllm.LLM"
    )
    share = f"{r.pass_share:.0%}" if r.pass_share is not None else "n/a"
    console.print(
        f"LLM drafts that pass every gate: {r.passed} of {r.llm_drafts} ({share}); "
        f"fell back: {r.fallback_reasons or 'none'}"
    )
    emit_json(asdict(r))


@app.command("materialize")
def materialize(
    rows: Annotated[int, typer.Option(min=10_000, help="Rows materialized.")] = 1_000_000,
    online_store: Annotated[
        str | None,
        typer.Option(
            help="The online store (default: SLUICE_ONLINE_STORE_URL, else the local Redis)."
        ),
    ] = None,
    workdir: Annotated[Path | None, typer.Option(help="Scratch directory (replaced).")] = None,
) -> None:
    """Materializing a feature table into the online store vs Feast's own Redis writer."""
    from sluice.bench.materialize import run_materialize_bench
    from sluice.settings import get_settings

    url = online_store or get_settings().online_store_url or "redis://127.0.0.1:6379/0"
    r = run_materialize_bench(rows, url, _workdir(workdir, "materialize"))
    console.print(
        table(
            f"Materialize {r.rows:,} rows into {r.store}",
            ["", "rows", "rows/s"],
            [
                ["(a) sluice features materialize (read, validate, write)", r.rows, r.rows_per_s],
                [
                    "(b) Feast's RedisOnlineStore.online_write_batch",
                    r.feast_rows,
                    r.feast_rows_per_s,
                ],
                ["ratio a/b (target: a >= 50,000 rows/s)", "", r.ratio],
            ],
        )
    )
    emit_json(asdict(r))


bench_pipeline_cmd.register(app)
