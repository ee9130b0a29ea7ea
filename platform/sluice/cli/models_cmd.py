"""``sluice models ...``"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sluice.cli.output import console, emit_json, table
from sluice.errors import InputError
from sluice.settings import get_settings

FloorOption = Annotated[
    list[str] | None, typer.Option(help="METRIC=MIN, replacing the configured floors.")
]
CeilingOption = Annotated[
    list[str] | None, typer.Option(help="METRIC=MAX, replacing the configured ceilings.")
]

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

    versions = Registry(get_settings()).versions(name)
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
    floor: FloorOption = None,
    ceiling: CeilingOption = None,
) -> None:
    """Move an alias to VERSION if it meets the promotion floors; print why not otherwise.

    ``champion`` is reached through ``sluice models approve`` (a named approver)."""
    from sluice.registry import Registry

    if to == "champion":
        raise InputError(
            "--to: champion needs a named approver: sluice models approve VERSION --by NAME",
            field="to",
        )
    checks = Registry(get_settings()).promote(
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


@app.command("approve")
def approve(
    version: Annotated[str, typer.Argument(help="Version to make champion.")],
    by: Annotated[str, typer.Option(help="Name of the person approving.")],
    window: Annotated[
        Path | None,
        typer.Option(
            help="Held-out labelled features (sluice features build) the floors are checked "
            "on; default: the validation metrics recorded at registration."
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Registered model name.")] = None,
    floor: FloorOption = None,
    ceiling: CeilingOption = None,
) -> None:
    """Make VERSION champion: metric floors on a held-out window, drift, a named approver."""
    from sluice.approval import approve as do_approve
    from sluice.registry import Registry

    done = do_approve(
        version,
        by,
        window=window,
        name=name,
        floors=_thresholds(floor, "--floor") if floor else None,
        ceilings=_thresholds(ceiling, "--ceiling") if ceiling else None,
        registry=Registry(get_settings()),
    )
    for c in done.checks:
        console.print(f"  {c.describe()}")
    if done.baseline is not None:
        console.print(f"  {done.baseline.describe()}")
    for d in done.drift:
        if d.level != "ok":
            console.print(f"  [yellow]drift {d.level}[/]: {d.variable} PSI {d.psi:.3f}")
    console.print(f"[green]champion[/] now points at version {version} (approved by {by})")
    emit_json(
        {
            "version": version,
            "alias": "champion",
            "approved_by": by,
            "previous": done.previous,
            "window": done.window,
            "metrics": done.metrics,
            "checks": [c.describe() for c in done.checks],
            "baseline": done.baseline.describe() if done.baseline is not None else None,
            "drift_max_psi": max((d.psi for d in done.drift), default=None),
        }
    )


@app.command("rollback")
def rollback(
    by: Annotated[str, typer.Option(help="Name of the person rolling back.")],
    alias: Annotated[str, typer.Option(help="Alias to move back.")] = "champion",
    name: Annotated[str | None, typer.Option(help="Registered model name.")] = None,
    reason: Annotated[str, typer.Option(help="Why (kept with the version).")] = "",
) -> None:
    """Point ALIAS back at the version it held before the current one."""
    from sluice.registry import Registry
    from sluice.registry.rollback import rollback as do_rollback

    registry = Registry(get_settings())
    done = do_rollback(by, alias=alias, name=name, reason=reason, registry=registry)
    assert done is not None
    console.print(
        f"[green]{alias}[/] moved back from version {done.from_version} to {done.to_version}"
    )
    emit_json({"alias": alias, "from": done.from_version, "to": done.to_version, "by": by})


@app.command("register")
def register(
    model_uri: Annotated[
        str,
        typer.Option(
            "--model-uri",
            help="The MLflow model: a directory, file:, runs:/RUN/PATH, or any artifact "
            "store URI (LightGBM, XGBoost, scikit-learn, PyTorch or pyfunc flavour).",
        ),
    ],
    contract: Annotated[
        str,
        typer.Option(help="Feature contract file (YAML or JSON) or a built-in contract id."),
    ],
    name: Annotated[str | None, typer.Option(help="Registered model name.")] = None,
    gpus: Annotated[
        float, typer.Option(help="GPUs each batch-scoring actor asks for (PyTorch, pyfunc).")
    ] = 0.0,
    validation: Annotated[
        Path | None,
        typer.Option(
            help="Labelled feature table that satisfies the contract: validation metrics "
            "and the drift reference are recorded from it."
        ),
    ] = None,
) -> None:
    """Register a model trained elsewhere as the new challenger, checked against CONTRACT."""
    from sluice.approval.register import register_model
    from sluice.contracts.contract_files import resolve_contract
    from sluice.registry import Registry

    settings = get_settings()
    done = register_model(
        Registry(settings),
        model_uri,
        resolve_contract(contract),
        name=name or settings.model_name,
        num_gpus=gpus,
        validation=validation,
    )
    info = done.info
    console.print(
        f"[green]registered[/] {info.name} version {info.version} ({done.flavor}, contract "
        f"{info.tags.get('feature_contract')}) as {', '.join(info.aliases) or 'no alias'}"
    )
    for metric, value in done.metrics.items():
        console.print(f"  {metric}: {value:.4f}")
    emit_json(
        {
            "name": info.name,
            "version": info.version,
            "flavor": done.flavor,
            "aliases": list(info.aliases),
            "feature_contract": info.tags.get("feature_contract"),
            "metrics": done.metrics,
        }
    )
