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
    end: Annotated[
        datetime, typer.Option(formats=["%Y-%m-%d"], help="Last day of history.")
    ] = datetime(2026, 6, 30),
) -> None:
    """Write customers, transactions, events and truth Parquet files to OUT."""
    from sluice.data import SynthConfig, synthesize

    cfg = SynthConfig(customers=customers, seed=seed, end=end.date())
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
            "out": str(out),
        }
    )
