"""``sluice gates check``: a spec's content gates on copy, before a launch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sluice.cli.output import console, emit_json
from sluice.settings import get_settings

app = typer.Typer(help="The validation gates.", no_args_is_help=True)


@app.command("check")
def check(
    spec: Annotated[Path, typer.Argument(help="Campaign spec (YAML) whose gates apply.")],
    copy: Annotated[
        Path,
        typer.Option(
            "--copy",
            help="JSON Lines: offer_id, channel, the copy fields, optional slots.",
        ),
    ],
) -> None:
    """Run the spec's content gates (injection, PII, claims, brand safety, format) on each
    line; print each line's verdict. Ends with a JSON line: lines, by_outcome, by_reason."""
    from sluice.campaign.spec import load_spec
    from sluice.decisioning.catalog import load_catalog
    from sluice.errors import InputError
    from sluice.gates.check import check_copy

    settings = get_settings()
    loaded = load_spec(spec, settings.home_dir)
    if not copy.is_file():
        raise InputError(f"--copy: {copy} not found", field="copy")
    decision = loaded.decision_date or settings.clock.today()
    catalog = load_catalog(loaded.offers, decision)
    with copy.open(encoding="utf-8") as lines:
        report = check_copy(lines, loaded, catalog, settings.clock.now())
    for v in report.verdicts:
        if v.outcome == "pass":
            console.print(f"line {v.line}: pass", markup=False)
        else:
            where = f"{v.gate}/{v.reason}" if v.gate else v.reason
            console.print(f"line {v.line}: {v.outcome} {where} ({v.detail})", markup=False)
    emit_json(report.figures())
