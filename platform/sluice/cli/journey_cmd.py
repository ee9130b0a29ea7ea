"""``sluice journey``: validate, deploy, pause, resume, inspect and backtest journeys."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from sluice.cli.output import console, emit_json, table
from sluice.settings import get_settings

app = typer.Typer(help="Journeys: event-triggered, multi-step sequences.", no_args_is_help=True)
SpecArg = Annotated[Path, typer.Argument(help="Journey spec (YAML).")]


@app.command("validate")
def validate(spec: SpecArg) -> None:
    """Check a journey spec (errors name the file and the field)."""
    from sluice.journeys.spec import load_journey

    journey = load_journey(spec, get_settings().home_dir)
    rows = [[s.id, s.kind, ", ".join(sorted(journey.successors(s))) or "-"] for s in journey.steps]
    console.print(table(f"Journey {journey.journey_id}: valid", ["step", "kind", "next"], rows))
    emit_json({"journey_id": journey.journey_id, "valid": True, "steps": len(journey.steps)})


@app.command("deploy")
def deploy(
    spec: SpecArg,
    by: Annotated[str, typer.Option(help="Who deploys (recorded).")] = "cli",
) -> None:
    """Deploy (or redeploy) a journey; the orchestrator picks it up within seconds."""
    from sluice.journeys.spec import load_journey
    from sluice.store.db import connect
    from sluice.store.journeys import Journeys

    settings = get_settings()
    journey = load_journey(spec, settings.home_dir)
    record = Journeys(connect(settings.effective_database_url), settings.clock).deploy(
        journey.journey_id, journey.public(), by
    )
    console.print(f"journey {record.journey_id}: deployed ({record.status}) by {by}")
    emit_json({"journey_id": record.journey_id, "status": record.status})


def _set(journey_id: str, status: str) -> None:
    from sluice.store.db import connect
    from sluice.store.journeys import Journeys

    settings = get_settings()
    record = Journeys(connect(settings.effective_database_url), settings.clock).set_status(
        journey_id, status
    )
    console.print(f"journey {journey_id}: {record.status}")
    emit_json({"journey_id": journey_id, "status": record.status})


@app.command("pause")
def pause(journey_id: Annotated[str, typer.Argument()]) -> None:
    """Stop entries and steps (timers keep; due steps run on resume)."""
    _set(journey_id, "paused")


@app.command("resume")
def resume(journey_id: Annotated[str, typer.Argument()]) -> None:
    """Let a paused journey run again."""
    _set(journey_id, "active")


@app.command("list")
def list_() -> None:
    """Deployed journeys."""
    from sluice.store.db import connect
    from sluice.store.journeys import Journeys

    settings = get_settings()
    records = Journeys(connect(settings.effective_database_url), settings.clock).all()
    rows = [[r.journey_id, r.status, r.deployed_by, r.updated_at.isoformat()] for r in records]
    console.print(table("Journeys", ["journey", "status", "deployed by", "updated"], rows))
    emit_json({"journeys": [{"journey_id": r.journey_id, "status": r.status} for r in records]})


@app.command("status")
def status(journey_id: Annotated[str, typer.Argument()]) -> None:
    """The journey's funnel: entries, where instances stand, each step, exits, lift."""
    from sluice.contracts.journey import JourneySpec
    from sluice.journeys.funnel import funnel
    from sluice.store.db import connect
    from sluice.store.journeys import Journeys

    settings = get_settings()
    engine = connect(settings.effective_database_url)
    record = Journeys(engine, settings.clock).get(journey_id)
    spec = JourneySpec.model_validate(record.spec)
    figures = funnel(engine, spec, settings.clock.now())
    show_funnel(figures, f"Journey {journey_id} ({record.status})")
    emit_json(figures)


def show_funnel(figures: dict[str, Any], title: str) -> None:
    rows: list[list[Any]] = [["entries", "", f"{figures['entries']:,}", ""]]
    for s in figures["steps"]:
        for outcome, arms in sorted(s["outcomes"].items()):
            rows.append(
                [s["step"], outcome, f"{arms.get('treated', 0):,}", f"{arms.get('holdout', 0):,}"]
            )
    for reason, n in sorted(figures["exited"].items()):
        rows.append(["exited", reason, f"{n:,}", ""])
    rows.append(["live now", "", f"{figures['live']:,}", ""])
    rows.append(["completed", "", f"{figures['completed']:,}", ""])
    console.print(table(title, ["step", "outcome", "treated", "holdout"], rows))
    conv = figures.get("conversions")
    if conv:
        t, h = conv["treated"], conv["holdout"]
        line = (
            f"conversions ({conv['event']}): treated {t['converted']:,}/{t['instances']:,}, "
            f"holdout {h['converted']:,}/{h['instances']:,}"
        )
        if "lift" in conv:
            lift = conv["lift"]
            line += f"; lift {lift['value']:+.2%} (95% {lift['low']:+.2%} to {lift['high']:+.2%})"
        console.print(line)


@app.command("simulate")
def simulate(
    spec: SpecArg,
    events: Annotated[Path, typer.Option(help="Recorded events (JSON Lines or Parquet).")],
) -> None:
    """Backtest: replay recorded events through the journey on a virtual clock and
    report what each step would have done. Nothing is sent; no production state is
    touched (the run uses a scratch database and outbox)."""
    from sluice.journeys.simulate import simulate as run
    from sluice.journeys.spec import load_journey

    settings = get_settings()
    journey = load_journey(spec, settings.home_dir)
    result = run(journey, events, settings.home_dir)
    show_funnel(result.funnel, f"Backtest of {journey.journey_id} ({result.events:,} events)")
    console.print(
        f"virtual time {result.started.isoformat()} to {result.ended.isoformat()}; "
        f"rejected events {result.rejected:,}; LLM calls {result.llm_calls:,}"
    )
    emit_json(result.summary())


@app.command("report")
def report(
    journey_id: Annotated[str, typer.Argument()],
    out: Annotated[Path, typer.Option(help="HTML file to write.")],
) -> None:
    """A self-contained HTML report of the journey's funnel: each step against the step
    it comes from, exits by reason, where live instances stand, conversions and lift."""
    from sluice.contracts.journey import JourneySpec
    from sluice.journeys.funnel import funnel
    from sluice.report.journey_html import write_journey_report
    from sluice.store.db import connect
    from sluice.store.journeys import Journeys

    settings = get_settings()
    engine = connect(settings.effective_database_url)
    record = Journeys(engine, settings.clock).get(journey_id)
    spec = JourneySpec.model_validate(record.spec)
    now = settings.clock.now()
    figures = funnel(engine, spec, now)
    path = write_journey_report(figures, spec, out, status=record.status, generated_at=now)
    console.print(f"report: {path}")
    emit_json({"report": str(path), "journey_id": journey_id})
