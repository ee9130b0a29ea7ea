"""``sluice data ...``"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from sluice.cli.output import console, emit_json, table

app = typer.Typer(help="Customer data: generate a synthetic base.", no_args_is_help=True)


@app.command("synth")
def synth(
    customers: Annotated[int, typer.Option(min=1, help="Number of customers.")],
    out: Annotated[Path, typer.Option(help="Output directory.")],
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same base.")] = 7,
    as_of: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"],
            help="The world's today: history ends the day before. Default: today.",
        ),
    ] = None,
) -> None:
    """Write customers, transactions, events and truth Parquet files to OUT."""
    from sluice.data import SynthCalendar, SynthConfig, synthesize
    from sluice.settings import get_settings

    calendar = SynthCalendar(as_of.date()) if as_of else SynthCalendar.today(get_settings().clock)
    cfg = SynthConfig(customers=customers, seed=seed, end=calendar.history_end)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("customers", total=customers)
        result = synthesize(cfg, out, on_progress=lambda n: bar.advance(task, n))
    console.print(
        table(
            f"Synthetic base in {out}",
            ["file", "rows"],
            [
                ["customers.parquet", f"{result.customers:,}"],
                ["transactions.parquet", f"{result.transactions:,}"],
                ["events.parquet", f"{result.events:,}"],
            ],
        )
    )
    emit_json(
        {
            "customers": result.customers,
            "transactions": result.transactions,
            "events": result.events,
            "seconds": round(result.seconds, 2),
            "as_of": calendar.as_of.isoformat(),
            "history_end": calendar.history_end.isoformat(),
            "train_cutoff": calendar.train_cutoff.isoformat(),
            "valid_cutoff": calendar.valid_cutoff.isoformat(),
            "out": str(out),
        }
    )
