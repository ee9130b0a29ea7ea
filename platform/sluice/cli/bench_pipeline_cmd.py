"""``sluice bench campaign|crash|journeys``: the delivery pipeline and what feeds it
(registered on :data:`sluice.cli.bench_cmd.app`)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from sluice.cli.bench_dirs import workdir as _workdir
from sluice.cli.output import console, emit_json, table


def register(app: typer.Typer) -> None:
    """Add these benchmarks to ``app``."""
    app.command("campaign")(campaign)
    app.command("crash")(crash)
    app.command("journeys")(journeys)


def campaign(
    customers: Annotated[int, typer.Option(min=10_000, help="Recipients of the dry run.")] = (
        1_000_000
    ),
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run/--no-dry-run",
            help="Time the whole-base run as a dry run (delivery is timed on a subset).",
        ),
    ] = True,
    smtp_messages: Annotated[
        int, typer.Option(min=100, help="Recipients of the real run into the local SMTP server.")
    ] = 20_000,
    workdir: Annotated[Path | None, typer.Option(help="Scratch directory (replaced).")] = None,
) -> None:
    """A whole-base campaign dry run vs the scoring job alone; SMTP delivery vs smtplib."""
    from sluice.bench.campaign import run_campaign_bench
    from sluice.errors import InputError

    if not dry_run:
        raise InputError(
            "--no-dry-run: the whole-base run is always a dry run; real delivery is timed on "
            "--smtp-messages recipients",
            field="dry_run",
        )
    r = run_campaign_bench(customers, smtp_messages, _workdir(workdir, "campaign"))
    console.print(
        table(
            f"Campaign, {r.customers:,} recipients",
            ["", "seconds", "per second"],
            [
                [
                    "(a) campaign dry run (score, decide, copy, gates, audit)",
                    r.dry_run_s,
                    f"{r.recipients_per_s:,}",
                ],
                ["(b) scoring job alone, same audience", r.scoring_s, ""],
                [
                    "ratio b/a (1.0: the campaign costs no more than scoring)",
                    "",
                    r.ratio_vs_scoring,
                ],
                [
                    f"(c) SMTP delivery, {r.smtp_messages:,} emails",
                    r.smtp_delivery_s,
                    r.smtp_msgs_per_s,
                ],
                ["(d) bare smtplib, one connection, same server", "", r.bare_smtp_msgs_per_s],
                ["ratio c/d", "", r.smtp_ratio],
            ],
        )
    )
    emit_json(asdict(r))


def crash(
    database_url: Annotated[
        str | None,
        typer.Option(help="The database to run on (default: SQLite in the scratch directory)."),
    ] = None,
    kills: Annotated[int, typer.Option(min=1, max=1_000, help="SIGKILLs to deal.")] = 20,
    customers: Annotated[int, typer.Option(min=200, help="Size of the audience.")] = 2_000,
    seed: Annotated[int, typer.Option(help="Seed of the kill schedule.")] = 7,
    workdir: Annotated[Path | None, typer.Option(help="Scratch directory (replaced).")] = None,
) -> None:
    """SIGKILL a campaign's driver, coordinator and approvals at random, then compare what
    the SMTP server received with an independent oracle: duplicates and lost must be 0."""
    from sluice.bench.crash import run_crash_bench

    work = _workdir(workdir, "crash")
    r = run_crash_bench(
        work, customers, kills, database_url or f"sqlite:///{work / 'crash.db'}", seed
    )
    console.print(
        table(
            f"Crash bench on {r.database}: {r.kills} kills in {r.seconds} s",
            ["", "count"],
            [
                *[[f"kills of the {k}", n] for k, n in sorted(r.by_target.items())],
                *[[f"kills during {k}", n] for k, n in sorted(r.by_phase.items())],
                ["expected recipients (oracle)", r.expected],
                ["recipients reached", r.received],
                ["review items approved", r.reviewed],
                ["duplicates", r.duplicates],
                ["lost", r.lost],
            ],
        )
    )
    emit_json(
        {
            "kills": r.kills,
            "expected": r.expected,
            "received": r.received,
            "duplicates": r.duplicates,
            "lost": r.lost,
            "unexpected": r.unexpected,
            "database": r.database,
            "seconds": r.seconds,
        }
    )
    if r.duplicates or r.lost or r.unexpected:
        raise typer.Exit(1)


def journeys(
    instances: Annotated[
        int, typer.Option(min=1_000, help="Instances entered and held live.")
    ] = 1_000_000,
    due_rate: Annotated[
        int, typer.Option(min=1, help="Timers coming due per second in the timer phase.")
    ] = 1_000,
    seconds: Annotated[float, typer.Option(min=1, help="Length of the timer phase.")] = 10,
    advance: Annotated[
        int,
        typer.Option(min=1, help="Instances the steps phase advances (at most a fifth of them)."),
    ] = 20_000,
    poll: Annotated[
        float, typer.Option(min=0.01, help="The orchestrator's pause when idle (seconds).")
    ] = 0.5,
    workdir: Annotated[Path | None, typer.Option(help="Scratch directory (replaced).")] = None,
) -> None:
    """The journey engine on SQLite: entries/s, steps/s and timer lag at N live instances,
    against the delivery pipeline's dry run on as many messages."""
    from sluice.bench.journeys import run_journeys_bench

    r = run_journeys_bench(
        instances, due_rate, seconds, _workdir(workdir, "journeys"), advance, poll
    )
    console.print(
        table(
            f"Journey engine, {r.instances:,} instances ({r.live_instances:,} live), SQLite",
            ["", "count", "seconds", "per second"],
            [
                [
                    "entries (engine.enter, 10,000 per call)",
                    r.instances,
                    r.entries_s,
                    f"{r.entries_per_s:,}",
                ],
                ["(a) steps: step log rows (wait, send)", r.steps, r.steps_s, f"{r.steps_per_s:,}"],
                ["    sends through the pipeline", r.sends, r.steps_s, f"{r.sends_per_s:,}"],
                ["    of which in the pipeline (real sends)", "", r.steps_pipeline_s, ""],
                [
                    "(b) pipeline dry run, same messages",
                    r.baseline_messages,
                    "",
                    f"{r.baseline_msgs_per_s:,}",
                ],
                ["ratio a/b (target >= 0.5)", "", "", f"{r.ratio:.3f}"],
            ],
        )
    )
    console.print(
        table(
            f"Timer lag, {r.due_rate:,} due/s for {r.timer_seconds:g} s "
            f"({r.timers_done:,} of {r.timers:,} done, idle poll {r.poll_s:g} s)",
            ["", "p50 ms", "p99 ms", "max ms"],
            [
                [
                    "due -> send step committed (target p99 < 2000)",
                    r.timer_lag_p50_ms,
                    r.timer_lag_p99_ms,
                    r.timer_lag_max_ms,
                ],
                ["due -> wait step committed", "", r.wait_step_lag_p99_ms, ""],
            ],
        )
    )
    console.print(f"peak RSS {r.peak_rss_mb:,} MiB, database {r.database_mb:,} MiB")
    emit_json(asdict(r))
