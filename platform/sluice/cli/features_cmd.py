"""``sluice features ...``"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Annotated

import pyarrow.parquet as pq
import typer

from sluice.cli.output import console, emit_json, table
from sluice.errors import InputError

app = typer.Typer(help="Point-in-time features and labels; the online store.", no_args_is_help=True)


@app.command("build")
def build(
    cutoff: Annotated[
        datetime,
        typer.Option(
            formats=["%Y-%m-%d"], help="Features see only data before 00:00 UTC of this day."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Output Parquet file.")],
    data: Annotated[
        Path | None,
        typer.Option(help="A `sluice data synth` directory; features under propensity@1.0.0."),
    ] = None,
    transactions: Annotated[
        Path | None,
        typer.Option(
            help="A transaction log (CSV or Parquet: customer_id, timestamp, amount; optional "
            "quantity, order_id, product or category); features under transactions@1.0.0."
        ),
    ] = None,
    horizon_days: Annotated[
        int, typer.Option(min=1, help="Label window after the cutoff, in days.")
    ] = 90,
) -> None:
    """Build features as of CUTOFF, with labels from the HORIZON_DAYS after it."""
    from sluice.contracts.propensity import PROPENSITY_V1
    from sluice.contracts.transactions import TRANSACTIONS_V1
    from sluice.data.population import US_PER_DAY, day_us
    from sluice.features import build_features, load_synthetic, load_transaction_log

    if (data is None) == (transactions is None):
        raise InputError("give exactly one of --data or --transactions", field="data")
    started = time.perf_counter()
    cut = cutoff.date()
    if data is not None:
        history = load_synthetic(data, day_us(cut), day_us(cut) + horizon_days * US_PER_DAY)
    else:
        assert transactions is not None
        history = load_transaction_log(transactions, day_us(cut))
    built = build_features(history, cut, horizon_days, PROPENSITY_V1 if data else TRANSACTIONS_V1)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Row groups of 64k rows let Ray Data read one file with several tasks in parallel.
    pq.write_table(built.table, out, row_group_size=65_536)
    rejected = history.quarantine.num_rows
    if rejected:
        pq.write_table(history.quarantine, out.with_suffix(".quarantine.parquet"))
    rows = [
        ["customers", f"{built.table.num_rows:,}"],
        ["labelled", "yes" if built.labelled else "no (label window not covered)"],
        ["input rows quarantined", f"{rejected:,}"],
    ]
    if built.labelled:
        rows.append(
            ["positive rate", f"{float(built.table.column('label').to_numpy().mean()):.4f}"]
        )
    console.print(table(f"Features as of {cut} -> {out}", ["", ""], rows))
    emit_json(
        {
            "customers": built.table.num_rows,
            "labelled": built.labelled,
            "quarantined": rejected,
            "cutoff": cut.isoformat(),
            "horizon_days": horizon_days,
            "contract": built.table.schema.metadata[b"sluice.feature_contract"].decode(),
            "seconds": round(time.perf_counter() - started, 2),
            "out": str(out),
        }
    )


@app.command("materialize")
def materialize(
    features: Annotated[
        Path, typer.Option(help="A feature table: a Parquet file or a directory of them.")
    ],
    contract: Annotated[
        str | None,
        typer.Option(
            help="A feature contract (YAML or JSON file, or a built-in name); default: the "
            "propensity contract."
        ),
    ] = None,
    batch_rows: Annotated[int, typer.Option(min=1, help="Rows read and written per batch.")] = (
        65_536
    ),
) -> None:
    """Write a feature table to the online store (SLUICE_ONLINE_STORE_URL) with its feature
    timestamp, so decisions, journeys and sends look customers up by id."""
    from rich.progress import Progress

    from sluice.contracts.contract_files import resolve_contract
    from sluice.contracts.propensity import PROPENSITY_V1
    from sluice.online import OnlineStore, OnlineStoreConfig
    from sluice.online import materialize as run
    from sluice.settings import get_settings

    chosen = PROPENSITY_V1 if contract is None else resolve_contract(contract)
    config = OnlineStoreConfig.from_settings(get_settings())
    store = OnlineStore(config, chosen)
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task(f"materializing into {config.url}", total=None)
        report = run(
            features,
            chosen,
            store,
            lambda done, total: bar.update(task, completed=done, total=total),
            batch_rows,
        )
    config.write_feature_store_yaml(config.registry.parent)
    rows = [
        ["rows written", f"{report.rows:,}"],
        ["rows/s", f"{report.rows_per_s:,.0f}"],
        ["quarantined", f"{report.quarantined:,}"],
        ["kept (a later row is stored)", f"{report.skipped_newer:,}"],
        ["feature timestamps", ", ".join(report.features_at) or "-"],
        ["store", f"{report.store} (view {report.view})"],
    ]
    if report.quarantine_file:
        rows.append(["quarantine", report.quarantine_file])
    console.print(table(f"Materialized {features}", ["", ""], rows))
    emit_json(
        {
            "rows": report.rows,
            "rows_per_s": report.rows_per_s,
            "store": report.store,
            "view": report.view,
            "quarantined": report.quarantined,
            "skipped_newer": report.skipped_newer,
            "features_at": report.features_at,
            "seconds": report.seconds,
        }
    )
