"""``sluice demo``"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sluice.cli.output import console, emit_json, table


def demo(
    customers: Annotated[
        int, typer.Option(min=1_000, help="Size of the synthetic base.")
    ] = 200_000,
    seed: Annotated[int, typer.Option()] = 7,
    workdir: Annotated[
        Path | None, typer.Option(help="Where data and outputs go (default SLUICE_HOME/demo).")
    ] = None,
) -> None:
    """Run the platform end to end on embedded defaults."""
    from sluice.demo import DemoConfig, run_demo

    figures = run_demo(
        DemoConfig(customers=customers, seed=seed, workdir=workdir),
        step=lambda s: console.print(f"[bold cyan]>[/] {s}"),
    )
    rows = [
        ["customers", f"{figures['customers']:,}"],
        ["model", f"sluice-propensity version {figures['model_version']}"],
        ["ROC AUC / PR AUC", f"{figures['roc_auc']:.4f} / {figures['pr_auc']:.4f}"],
        ["top-decile lift", f"{figures['top_decile_lift']:.2f}"],
        ["rows scored", f"{figures['scored']:,}"],
        ["rows quarantined", f"{figures['quarantined']:,}"],
    ]
    rows += [
        [f"  quarantined for {k}", v] for k, v in sorted(figures["quarantine_reasons"].items())
    ]
    rows += [["scores", figures["scores"]]]
    console.print(table("Sluice demo", ["", ""], rows))
    emit_json(figures)
