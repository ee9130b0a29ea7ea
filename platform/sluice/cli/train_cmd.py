"""``sluice train``"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sluice.cli.output import console, emit_json, table
from sluice.settings import get_settings


def train(
    features: Annotated[
        Path, typer.Option(help="Labelled features (from `sluice features build`).")
    ],
    valid_features: Annotated[
        Path | None,
        typer.Option(help="Validate on these (a later cutoff) instead of held-out customers."),
    ] = None,
    num_boost_round: Annotated[int, typer.Option(min=1)] = 600,
    valid_fraction: Annotated[float, typer.Option(min=0.01, max=0.9)] = 0.2,
    seed: Annotated[int, typer.Option()] = 42,
    alias: Annotated[str, typer.Option(help="Alias the new version gets.")] = "challenger",
) -> None:
    """Fit LightGBM, log everything to MLflow, register a version and alias it."""
    from sluice.registry import Registry
    from sluice.training import TrainConfig
    from sluice.training import train as fit

    trained = fit(
        features,
        valid_features,
        TrainConfig(num_boost_round=num_boost_round, valid_fraction=valid_fraction, seed=seed),
    )
    info = Registry(get_settings()).register(trained, alias=alias)
    ev = trained.evaluation
    console.print(
        table(
            f"Model {info.name} version {info.version} (alias {alias})",
            ["metric", "value"],
            [
                ["ROC AUC", f"{ev.roc_auc:.4f}"],
                ["PR AUC", f"{ev.pr_auc:.4f}"],
                ["log loss", f"{ev.log_loss:.4f}"],
                ["base rate", f"{ev.base_rate:.4f}"],
                ["top-decile lift", f"{ev.lift[0].lift:.2f}"],
                ["trees", trained.best_iteration],
                [
                    "train / valid rows",
                    f"{trained.n_train:,} / {trained.n_valid:,} ({trained.validation})",
                ],
            ],
        )
    )
    console.print(
        table(
            "Lift by decile",
            ["decile", "rate", "lift", "gain"],
            [
                [d.decile, f"{d.rate:.3f}", f"{d.lift:.2f}", f"{d.cumulative_gain:.2f}"]
                for d in ev.lift
            ],
        )
    )
    emit_json(
        {
            "model_name": info.name,
            "version": info.version,
            "alias": alias,
            "run_id": info.run_id,
            **{k: round(v, 6) for k, v in ev.scalars().items()},
            "n_train": trained.n_train,
            "n_valid": trained.n_valid,
            "quarantined": trained.quarantined,
            "best_iteration": trained.best_iteration,
            "seconds": round(trained.seconds, 2),
        }
    )
