"""``sluice campaign ...`` and ``sluice mailsink``"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from sluice.cli.output import console, emit_json, table
from sluice.settings import get_settings

app = typer.Typer(help="Campaign runs: candidates, gates, ledger, delivery.", no_args_is_help=True)


def funnel_table(funnel: dict[str, object]) -> list[list[object]]:
    rows: list[list[object]] = [
        [k, funnel.get(k, 0)]
        for k in (
            "audience",
            "quarantined",
            "scored",
            "holdout",
            "arm_paused",
            "no_offer",
            "selected",
            "drafted",
        )
    ]
    rejected = funnel.get("rejected") or {}
    assert isinstance(rejected, dict)
    for gate, reasons in sorted(rejected.items()):
        for reason, n in sorted(reasons.items()):
            rows.append([f"rejected by {gate}: {reason}", n])
    rows += [
        [k, funnel.get(k, 0)]
        for k in (
            "review",
            "deferred",
            "would_send",
            "sent",
            "failed",
            "suppressed_at_send",
            "expired_at_send",
            "pending",
        )
    ]
    return rows


@app.command("run")
def run(
    spec: Annotated[Path, typer.Argument(help="Campaign spec (YAML).")],
    run_id: Annotated[
        str | None, typer.Option(help="Run id; rerunning one resumes it and sends nothing twice.")
    ] = None,
    dry_run: Annotated[
        bool | None,
        typer.Option(
            "--dry-run/--no-dry-run", help="Everything but delivery and ledger reservations."
        ),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Progress bars.")] = True,
) -> None:
    """Run a campaign; ends with one JSON line of its funnel."""
    from sluice.runids import check_run_id

    if run_id is not None:
        check_run_id(run_id)
    from sluice.campaign.run import run_campaign

    result = run_campaign(spec, run_id, dry_run, progress, settings=get_settings())
    kind = " (dry run)" if result.dry_run else ""
    title = f"Campaign run {result.run_id}{kind} in {result.seconds:.1f} s"
    console.print(table(title, ["", "messages"], funnel_table(result.funnel)))
    if result.sample:
        console.print(f"sample of would-be messages: {result.sample}")
    down = result.funnel.get("channels_down") or {}
    for channel, cause in sorted(down.items()):
        console.print(
            f"[bold red]channel {channel} is down[/]: {cause}. Its messages stay reserved; "
            f"fix the channel and rerun with --run-id {result.run_id}."
        )
    keys = (
        "run_id",
        "audience",
        "scored",
        "selected",
        "drafted",
        "rejected",
        "review",
        "deferred",
        "sent",
        "failed",
    )
    emit_json(
        {
            **{k: result.funnel.get(k) for k in keys},
            "holdout": result.funnel.get("holdout"),
            "quarantined": result.funnel.get("quarantined"),
            "dry_run": result.dry_run,
            "would_send": result.funnel.get("would_send"),
            "channels_down": down,
            "seconds": result.seconds,
        }
    )


@app.command("status")
def status(run_id: Annotated[str, typer.Argument(help="Run id.")]) -> None:
    """A run's state and funnel, from the database."""
    from sluice.errors import NotFoundError
    from sluice.runids import check_run_id
    from sluice.store.audit import AuditStore
    from sluice.store.db import connect
    from sluice.store.runs import Runs

    check_run_id(run_id)
    engine = connect(get_settings().effective_database_url)
    record = Runs(engine).get(run_id)
    if record is None:
        raise NotFoundError(f"no run {run_id!r}", field="run_id")
    funnel = {"run_id": run_id, **(record.funnel or {}), **AuditStore(engine).funnel(run_id)}
    console.print(table(f"Run {run_id}: {record.status}", ["", "messages"], funnel_table(funnel)))
    emit_json(
        {
            "run_id": run_id,
            "status": record.status,
            "dry_run": record.dry_run,
            "context": record.context,
            "funnel": funnel,
        }
    )


def mailsink(
    directory: Annotated[
        Path | None,
        typer.Option(help="Where received messages are stored (default SLUICE_HOME/mailsink)."),
    ] = None,
    smtp_port: Annotated[int, typer.Option(help="SMTP port.")] = 2525,
    http_port: Annotated[int, typer.Option(help="Message-status API port.")] = 2580,
    reply_delay_ms: Annotated[
        int, typer.Option(help="Hold each 250 reply back this long (a slow provider).")
    ] = 0,
) -> None:
    """A local SMTP server that stores what it receives (for demos and tests)."""
    from sluice.devtools.mailsink import MailSink

    directory = directory or get_settings().home_dir / "mailsink"
    sink = MailSink(
        directory, smtp_port=smtp_port, http_port=http_port, reply_delay_s=reply_delay_ms / 1000
    ).start()
    emit_json(
        {
            "smtp": f"127.0.0.1:{sink.smtp_port}",
            "status_url": sink.status_url,
            "directory": str(directory),
        }
    )
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        sink.stop()


__all__ = ["app", "mailsink"]
