"""``sluice models ...``"""

from __future__ import annotations

from typing import Annotated

import typer

from sluice.cli.output import console, emit_json, table
from sluice.errors import InputError

app = typer.Typer(help="The model registry: versions, aliases, promotion.", no_args_is_help=True)


def _thresholds(pairs: list[str], option: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for pair in pairs:
        metric, sep, value = pair.partition("=")
        try:
            out[metric.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise InputError(f"{option}: {pair!r} is not METRIC=NUMBER", field=option.lstrip("-"))
    return out


@app.command("list")
def list_versions(
    name: Annotated[str | None, typer.Option(help="Registered model name.")] = None,
) -> None:
    """Every version with its aliases and validation metrics."""
    from sluice.registry import Registry

    versions = Registry().versions(name)
    rows = [
        [
            v.version,
            ",".join(v.aliases) or "-",
            f"{v.metrics.get('roc_auc', float('nan')):.4f}",
            f"{v.metrics.get('pr_auc', float('nan')):.4f}",
            v.tags.get("feature_contract", "-"),
            v.created_at.strftime("%Y-%m-%d %H:%M"),
        ]
        for v in versions
    ]
    console.print(
        table(
            f"Versions of {name or 'the propensity model'}",
            ["version", "aliases", "roc_auc", "pr_auc", "contract", "created (UTC)"],
            rows,
        )
    )
    emit_json(
        {
            "versions": [
                {"version": v.version, "aliases": list(v.aliases), "metrics": v.metrics}
                for v in versions
            ]
        }
    )


@app.command("promote")
def promote(
    version: Annotated[str, typer.Argument(help="Version to promote.")],
    to: Annotated[str, typer.Option(help="Alias to point at it.")] = "champion",
    name: Annotated[str | None, typer.Option(help="Registered model name.")] = None,
    floor: Annotated[
        list[str] | None, typer.Option(help="METRIC=MIN, replacing the configured floors.")
    ] = None,
    ceiling: Annotated[
        list[str] | None, typer.Option(help="METRIC=MAX, replacing the configured ceilings.")
    ] = None,
) -> None:
    """Move an alias to VERSION if it meets the promotion floors; print why not otherwise."""
    from sluice.registry import Registry

    checks = Registry().promote(
        version,
        to=to,
        name=name,
        floors=_thresholds(floor, "--floor") if floor else None,
        ceilings=_thresholds(ceiling, "--ceiling") if ceiling else None,
    )
    for c in checks:
        console.print(f"  {c.describe()}")
    console.print(f"[green]{to}[/] now points at version {version}")
    emit_json(
        {
            "version": version,
            "alias": to,
            "promoted": True,
            "checks": [c.describe() for c in checks],
        }
    )
