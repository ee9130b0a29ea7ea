"""``sluice train``"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sluice.cli.output import console, emit_json, table
from sluice.settings import get_settings

if TYPE_CHECKING:
    from sluice.training import TrainedModel

COMPARED = ("roc_auc", "pr_auc", "log_loss", "top_decile_lift")
"""Metrics printed for the model and each baseline."""
LABELS = {
    "roc_auc": "ROC AUC",
    "pr_auc": "PR AUC",
    "log_loss": "log loss",
    "top_decile_lift": "top-decile lift",
}
SCALED = ("num_leaves", "min_data_in_leaf", "learning_rate", "lambda_l2")
"""Parameters chosen from the training data (see sluice.training.params)."""


def metric_rows(trained: TrainedModel) -> list[list[Any]]:
    """One row per metric: the model's value, then each baseline's."""
    evaluations = [trained.evaluation, *(b.evaluation for b in trained.baselines)]
    return [[LABELS[m], *(f"{ev.scalars()[m]:.4f}" for ev in evaluations)] for m in COMPARED] + [
        ["base rate", *(f"{ev.base_rate:.4f}" for ev in evaluations)]
    ]


def monotone(trained: TrainedModel) -> dict[str, int]:
    """Features trained under a monotone constraint (1 increasing, -1 decreasing)."""
    signs = trained.params.get("monotone_constraints") or []
    return {n: int(c) for n, c in zip(trained.contract.names, signs, strict=False) if c}


def setting_rows(trained: TrainedModel) -> list[list[Any]]:
    """The settings the data chose, the trees and the rows."""
    mono = ", ".join(f"{n} {'+' if c > 0 else '-'}" for n, c in monotone(trained).items())
    return [
        *([k, trained.params[k]] for k in SCALED if k in trained.params),
        ["monotone", mono or "none"],
        ["trees", f"{trained.best_iteration} ({trained.cv_folds}-fold CV early stopping)"],
        [
            "train / valid rows",
            f"{trained.n_train:,} / {trained.n_valid:,} ({trained.validation})",
        ],
    ]


def best_baseline(trained: TrainedModel) -> dict[str, Any]:
    """The best baseline by ROC AUC and the model's margin over it."""
    if not trained.baselines:
        return {"best_baseline": None, "roc_auc_over_best_baseline": None}
    best = max(trained.baselines, key=lambda b: b.evaluation.roc_auc)
    return {
        "best_baseline": best.name,
        "roc_auc_over_best_baseline": round(
            trained.evaluation.roc_auc - best.evaluation.roc_auc, 6
        ),
    }


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
    cv_folds: Annotated[
        int, typer.Option(min=2, max=20, help="Cross-validation folds that choose the trees.")
    ] = 5,
    alias: Annotated[str, typer.Option(help="Alias the new version gets.")] = "challenger",
    contract: Annotated[
        str | None,
        typer.Option(
            help="Feature contract to train on: a YAML or JSON file, or a built-in name "
            "(`sluice contracts show`). Default: the built-in contract the table was built "
            "under, else propensity."
        ),
    ] = None,
) -> None:
    """Fit LightGBM, log everything to MLflow, register a version and alias it."""
    from sluice.contracts.contract_files import resolve_contract
    from sluice.registry import Registry
    from sluice.training import TrainConfig
    from sluice.training import train as fit

    chosen = resolve_contract(contract) if contract is not None else None
    trained = fit(
        features,
        valid_features,
        TrainConfig(
            num_boost_round=num_boost_round,
            valid_fraction=valid_fraction,
            seed=seed,
            cv_folds=cv_folds,
        ),
        chosen,
    )
    info = Registry(get_settings()).register(trained, alias=alias)
    console.print(
        table(
            f"Model {info.name} version {info.version} (alias {alias}, contract "
            f"{trained.contract.key})",
            ["metric", "model", *(b.name for b in trained.baselines)],
            metric_rows(trained),
        )
    )
    if trained.baseline_note:
        console.print(f"[yellow]{trained.baseline_note}[/]")
    else:
        console.print(
            f"Baselines fitted on the same {trained.n_train:,} training rows and evaluated on "
            f"the same {trained.n_valid:,} validation rows."
        )
    console.print(table("Training", ["setting", "value"], setting_rows(trained)))
    ev = trained.evaluation
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
            "contract": trained.contract.key,
            **{k: round(v, 6) for k, v in ev.scalars().items()},
            "baselines": {
                b.name: {k: round(b.evaluation.scalars()[k], 6) for k in COMPARED}
                for b in trained.baselines
            },
            **best_baseline(trained),
            "params": {k: trained.params[k] for k in SCALED if k in trained.params},
            "monotone": monotone(trained),
            "cv_folds": trained.cv_folds,
            "n_train": trained.n_train,
            "n_valid": trained.n_valid,
            "quarantined": trained.quarantined,
            "best_iteration": trained.best_iteration,
            "seconds": round(trained.seconds, 2),
        }
    )
