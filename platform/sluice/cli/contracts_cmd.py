"""``sluice contracts``: feature contracts written as data, checked and shown."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sluice.cli.output import console, emit_json, table
from sluice.errors import InputError

if TYPE_CHECKING:
    from sluice.contracts.feature_contract import FeatureContract, FeatureSpec

app = typer.Typer(
    help="Feature contracts: validate a contract file, show one as YAML.", no_args_is_help=True
)


def _rule(spec: FeatureSpec) -> str:
    if spec.categories:
        shown = ", ".join(spec.categories[:6])
        return f"{{{shown}{', ...' if len(spec.categories) > 6 else ''}}}"
    low = "-inf" if spec.min is None else f"{spec.min:g}"
    high = "inf" if spec.max is None else f"{spec.max:g}"
    return f"[{low}, {high}]"


def feature_rows(contract: FeatureContract) -> list[list[Any]]:
    """One row per feature: name, kind, allowed values, null policy, direction."""
    return [
        [f.name, f.kind.value, _rule(f), f.nulls.value, f.direction.value if f.direction else "-"]
        for f in contract.features
    ]


def _check_table(contract: FeatureContract, path: Path) -> dict[str, Any]:
    """How many rows of the feature table at ``path`` meet ``contract``, and why not."""
    import pyarrow.parquet as pq

    if not path.exists():
        raise InputError(f"--features: {path} does not exist", field="features")
    data = pq.read_table(path)
    absent = [n for n in (contract.id_column, *contract.names) if n not in data.column_names]
    if absent:
        raise InputError(
            f"--features: {path} lacks column(s) {', '.join(absent)} of contract {contract.key}",
            field=absent[0],
        )
    checked = contract.validate_batch(data)
    reasons: dict[str, int] = {}
    for reason in checked.quarantine.column("reason").to_pylist():
        for part in str(reason).split("; "):
            reasons[part] = reasons.get(part, 0) + 1
    return {"rows": data.num_rows, "valid": checked.n_valid, "reasons": reasons}


@app.command("validate")
def validate(
    file: Annotated[Path, typer.Argument(help="A feature contract (YAML or JSON).")],
    features: Annotated[
        Path | None,
        typer.Option(help="Also check this feature table (Parquet) against the contract."),
    ] = None,
) -> None:
    """Check a contract file (errors name the file and the field); with --features, count
    the rows of a feature table that meet it."""
    from sluice.contracts.contract_files import load_contract_file

    contract = load_contract_file(file)
    console.print(
        table(
            f"Contract {contract.key}: valid",
            ["feature", "kind", "allowed", "nulls", "direction"],
            feature_rows(contract),
        )
    )
    figures: dict[str, Any] = {
        "contract": contract.key,
        "valid": True,
        "features": len(contract.features),
        "digest": contract.digest(),
    }
    if features is not None:
        checked = _check_table(contract, features)
        top = sorted(checked["reasons"].items(), key=lambda kv: -kv[1])[:10]
        console.print(
            f"{features}: {checked['valid']:,} of {checked['rows']:,} rows meet the contract"
        )
        if top:
            console.print(table("Rows refused, by reason", ["reason", "rows"], [*map(list, top)]))
        figures["table"] = {"path": str(features), **checked}
    emit_json(figures)


@app.command("show")
def show(
    ref: Annotated[
        str | None,
        typer.Argument(help="A contract file, or a built-in name (`propensity@1.0.0`)."),
    ] = None,
) -> None:
    """Print a contract as YAML (a file `sluice contracts validate` and `sluice train
    --contract` read); without REF, list the built-in contracts."""
    from sluice.contracts.builtin import BUILTIN_CONTRACTS
    from sluice.contracts.contract_files import contract_to_yaml, resolve_contract

    if ref is not None:
        sys.stdout.write(contract_to_yaml(resolve_contract(ref)))
        sys.stdout.flush()
        return
    rows = [[c.key, len(c.features), c.digest()[:12]] for c in BUILTIN_CONTRACTS.values()]
    console.print(table("Built-in feature contracts", ["contract", "features", "digest"], rows))
    emit_json({"builtin": list(BUILTIN_CONTRACTS)})
