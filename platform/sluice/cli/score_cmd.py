"""``sluice score``"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from sluice.cli.output import console, emit_json, table


def score(
    audience: Annotated[str, typer.Option(help="Parquet file or directory of feature rows.")],
    out: Annotated[
        Path, typer.Option(help="Output directory (scores/, quarantine/, summary.json).")
    ],
    model: Annotated[
        str, typer.Option(help="NAME@ALIAS or NAME/VERSION.")
    ] = "sluice-propensity@champion",
    predictor: Annotated[str, typer.Option(help="auto, compiled or booster.")] = "auto",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing run in --out.")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Batch-score an audience on Ray Data; bad rows are quarantined with reasons."""
    from sluice.errors import InputError
    from sluice.registry import Registry
    from sluice.scoring import ScoreRequest, run_scoring
    from sluice.settings import get_settings

    if predictor not in ("auto", "compiled", "booster"):
        raise InputError("--predictor: must be auto, compiled or booster", field="predictor")
    mode: Literal["auto", "compiled", "booster"] = predictor  # type: ignore[assignment]
    report = run_scoring(
        ScoreRequest(
            audience=audience,
            model=model,
            out=out,
            predictor=mode,
            overwrite=overwrite,
            progress=progress,
        ),
        Registry(get_settings()),
    )
    rows = [
        ["model", f"{report.model_name} version {report.model_version} ({report.predictor})"],
        ["rows scored", f"{report.scored:,}"],
        ["rows quarantined", f"{report.quarantined:,}"],
        ["throughput", f"{report.rows_per_s:,.0f} rows/s"],
        ["wall time", f"{report.seconds:.1f} s"],
    ]
    rows += [
        [f"  quarantined for {k}", f"{v:,}"]
        for k, v in sorted(report.reasons.items(), key=lambda kv: -kv[1])
    ]
    rows += [
        [f"  unreadable file {path}", err[:60]] for path, err in report.unreadable_files.items()
    ]
    console.print(table(f"Scoring run -> {out}", ["", ""], rows))
    _shutdown_ray()
    emit_json(
        {
            "scored": report.scored,
            "quarantined": report.quarantined,
            "rows_per_s": report.rows_per_s,
            "seconds": report.seconds,
            "model_name": report.model_name,
            "model_version": report.model_version,
            "predictor": report.predictor,
            "unreadable_files": len(report.unreadable_files),
            "out": report.out,
        }
    )


def _shutdown_ray() -> None:
    """Stop the local cluster now (faster than at interpreter exit)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
