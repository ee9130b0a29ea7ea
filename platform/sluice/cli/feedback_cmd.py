"""``sluice events import``, ``sluice kpis``, ``sluice guardrails``, ``sluice incidents``,
``sluice report``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from sluice.cli.output import console, emit_json, table
from sluice.errors import InputError
from sluice.settings import get_settings

events_app = typer.Typer(help="Outcome events: deliveries, opens, clicks, conversions, ...")
incidents_app = typer.Typer(help="Incidents opened by guardrails.", no_args_is_help=True)


def read_events(path: Path) -> list[dict[str, Any]]:
    """Events from JSON Lines, a JSON array, CSV or Parquet (one event per row)."""
    if not path.is_file():
        raise InputError(f"FILE: {path} not found", field="file")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return [
            {k: v for k, v in r.items() if v is not None} for r in pq.read_table(path).to_pylist()
        ]
    text = path.read_text(encoding="utf-8")
    if suffix == ".csv":
        import csv
        import io

        return [
            {k: v for k, v in r.items() if v not in ("", None)}
            for r in csv.DictReader(io.StringIO(text))
        ]
    if text.lstrip().startswith("["):
        data = json.loads(text)
        return [d if isinstance(d, dict) else {"_": d} for d in data]
    out: list[dict[str, Any]] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"FILE: line {n} is not JSON: {exc.msg}", field="file") from exc
        out.append(item if isinstance(item, dict) else {"_": item})
    return out


@events_app.command("import")
def import_events(
    file: Annotated[Path, typer.Argument(help="Events: .jsonl, .json, .csv or .parquet.")],
    rejected_out: Annotated[
        Path | None, typer.Option(help="Where rejected events go (default FILE.rejected.jsonl).")
    ] = None,
) -> None:
    """Validate, deduplicate and store events; suppress at once; evaluate guardrails."""
    from sluice.channels.unsubscribe import secret
    from sluice.feedback.ingest import ingest
    from sluice.store.db import connect

    items = read_events(file)
    from sluice.registry.registry import Registry

    settings = get_settings()
    engine = connect(settings.effective_database_url)
    source = f"import:{file.name}"[:32]
    key = secret(settings.home_dir)
    result = ingest(engine, items, source, key, clock=settings.clock, registry=Registry(settings))
    if result.rejected:
        out = rejected_out or file.with_name(file.name + ".rejected.jsonl")
        with out.open("w", encoding="utf-8") as fh:
            for r in result.rejected:
                record = {"event": items[r.index], "field": r.field, "reason": r.reason}
                fh.write(json.dumps(record, default=str) + "\n")
        console.print(f"[yellow]{len(result.rejected)} rejected[/], reasons in {out}")
    console.print(
        f"{result.accepted} stored, {result.duplicates} duplicates, "
        f"{result.suppressions} suppressions, incidents: {', '.join(result.incidents) or 'none'}"
    )
    emit_json(
        {
            "accepted": result.accepted,
            "duplicates": result.duplicates,
            "rejected": len(result.rejected),
            "suppressions": result.suppressions,
            "incidents": result.incidents,
        }
    )


def kpis(run_id: Annotated[str, typer.Argument(help="Campaign run id.")]) -> None:
    """Per arm and model version: conversion, revenue per recipient, lift, unsubscribes,
    complaints (95% intervals), and the run's guardrails."""
    from sluice.feedback.guardrails import check_run
    from sluice.feedback.kpis import kpis_json, run_kpis
    from sluice.store.db import connect

    engine = connect(get_settings().effective_database_url)
    k = run_kpis(engine, run_id)

    def pct(i: Any) -> str:
        return f"{100 * i.value:.2f}% [{100 * i.low:.2f}, {100 * i.high:.2f}]"

    rows = [
        [
            a.arm,
            a.model_version or "-",
            a.recipients,
            a.sent,
            pct(a.conversion_rate),
            f"{a.revenue_per_recipient.value:.2f}",
            pct(a.lift_vs_holdout) if a.lift_vs_holdout else "-",
            pct(a.unsubscribe_rate),
            pct(a.complaint_rate),
        ]
        for a in k.arms
    ]
    console.print(
        table(
            f"KPIs of {run_id}",
            [
                "arm",
                "model",
                "recipients",
                "sent",
                "conversion",
                "rev/recipient",
                "lift",
                "unsub",
                "complaints",
            ],
            rows,
        )
    )
    results = check_run(k)
    for r in results:
        console.print(f"  guardrail {r.name}: {'[red]FIRES[/]' if r.fired else 'ok'} ({r.detail})")
    emit_json({**kpis_json(k), "guardrails": [r.model_dump() for r in results]})


def guardrails(run_id: Annotated[str, typer.Argument(help="Campaign run id.")]) -> None:
    """Evaluate the run's guardrails now and act if one fires (as events do)."""
    from sluice.feedback.guardrails import evaluate_guardrails
    from sluice.registry.registry import Registry
    from sluice.store.db import connect

    settings = get_settings()
    check = evaluate_guardrails(
        connect(settings.effective_database_url), Registry(settings), run_id
    )
    for r in check.results:
        console.print(f"  {r.name}: {'[red]FIRES[/]' if r.fired else 'ok'} ({r.detail})")
    for a in check.actions:
        console.print(f"  [bold]{a}[/]")
    emit_json(
        {
            "run_id": run_id,
            "fired": [r.name for r in check.results if r.fired],
            "incident_id": check.incident.incident_id if check.incident else None,
            "actions": check.actions,
        }
    )


@incidents_app.command("list")
def list_incidents(
    campaign: Annotated[str | None, typer.Option(help="Only this campaign.")] = None,
    status: Annotated[str | None, typer.Option(help="open or resolved.")] = None,
) -> None:
    """Incidents, oldest first."""
    from sluice.store.db import connect
    from sluice.store.incidents import Incidents

    found = Incidents(connect(get_settings().effective_database_url)).list(campaign, status)
    rows = [
        [i.incident_id, i.campaign_id, i.run_id, i.arm, i.guardrail, i.status, i.opened_at]
        for i in found
    ]
    console.print(
        table("Incidents", ["id", "campaign", "run", "arm", "guardrail", "status", "opened"], rows)
    )
    emit_json({"incidents": [i.model_dump(mode="json") for i in found]})


@incidents_app.command("show")
def show_incident(incident_id: Annotated[str, typer.Argument()]) -> None:
    """One incident with its evidence and actions."""
    from sluice.store.db import connect
    from sluice.store.incidents import Incidents

    found = Incidents(connect(get_settings().effective_database_url)).get(incident_id)
    console.print_json(found.model_dump_json())


@incidents_app.command("resolve")
def resolve_incident(
    incident_id: Annotated[str, typer.Argument()],
    by: Annotated[str, typer.Option(help="Name of the person resolving it.")],
    note: Annotated[str | None, typer.Option(help="What was found and done.")] = None,
    resume: Annotated[
        bool, typer.Option("--resume/--keep-paused", help="Make the paused arm active again.")
    ] = False,
) -> None:
    """Close an incident; ``--resume`` lets the paused arm send again."""
    from sluice.store.db import connect
    from sluice.store.incidents import Incidents
    from sluice.store.operations import OperationsLog

    engine = connect(get_settings().effective_database_url)
    done = Incidents(engine).resolve(incident_id, by, note, resume)
    OperationsLog(engine).record(
        "resolve" if not resume else "resume",
        f"campaign:{done.campaign_id}/{done.arm}",
        by,
        {"incident": incident_id, "note": note, "resumed": resume},
    )
    console.print(
        f"{incident_id} resolved by {by}; {done.arm} arm {'resumed' if resume else 'stays paused'}"
    )
    emit_json({"incident_id": incident_id, "status": done.status, "resumed": resume})


def report(
    run_id: Annotated[str, typer.Argument(help="Campaign run id.")],
    out: Annotated[Path, typer.Option(help="HTML file to write.")],
) -> None:
    """A self-contained HTML report of the run: scores, gains, funnel, arms, drift."""
    from sluice.report.data import write_report
    from sluice.store.db import connect

    path = write_report(connect(get_settings().effective_database_url), run_id, out)
    console.print(f"report: {path}")
    emit_json({"run_id": run_id, "report": str(path)})
