"""``sluice audit ...``"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sluice.cli.output import console, emit_json
from sluice.settings import get_settings

app = typer.Typer(help="The audit trail: explain, replay, export.", no_args_is_help=True)


@app.command("show")
def show(
    run: Annotated[str, typer.Option(help="Run id.")],
    customer: Annotated[str, typer.Option(help="Customer id.")],
) -> None:
    """Explain one decision of a run in plain words (then its record as JSON)."""
    from sluice.audit import explain
    from sluice.runids import check_run_id

    check_run_id(run)
    text, record = explain(run, customer, get_settings().effective_database_url)
    console.print(text, markup=False)
    emit_json(record)


@app.command("replay")
def replay(
    run: Annotated[str, typer.Option(help="Run id.")],
    spec: Annotated[
        Path | None,
        typer.Option(help="Replay with this spec's gate settings instead of the run's own."),
    ] = None,
) -> None:
    """Re-apply the content gates to the recorded inputs; report every verdict that
    differs. Ends with a JSON line: checked, differing, by_gate."""
    from sluice.audit import replay_run
    from sluice.campaign.spec import load_spec
    from sluice.runids import check_run_id

    check_run_id(run)
    settings = get_settings()
    url = settings.effective_database_url
    report = replay_run(run, url, load_spec(spec, settings.home_dir) if spec else None)
    for e in report.examples:
        console.print(
            f"{e['customer_id']} {e['gate']}: recorded {e['recorded']}, now {e['replayed']}"
            + (f" ({e['detail']})" if e["detail"] else ""),
            markup=False,
        )
    console.print(f"{report.checked:,} verdicts checked, {report.differing:,} differ")
    emit_json(report.figures())


@app.command("export")
def export(
    run: Annotated[str, typer.Option(help="Run id.")],
    out: Annotated[Path, typer.Option(help="Parquet file to write.")],
) -> None:
    """Write a run's audit records (drafts and delivery state included) to Parquet."""
    from sluice.audit import export_run
    from sluice.runids import check_run_id

    check_run_id(run)
    rows = export_run(run, out, get_settings().effective_database_url)
    console.print(f"{rows:,} audit records of {run} -> {out}")
    emit_json({"run_id": run, "rows": rows, "out": str(out)})
