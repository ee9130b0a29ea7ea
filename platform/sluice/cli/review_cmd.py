"""``sluice review ...``"""

from __future__ import annotations

from typing import Annotated

import typer

from sluice.cli.output import console, emit_json, table
from sluice.settings import get_settings

app = typer.Typer(help="The review queue: messages waiting for a person.", no_args_is_help=True)


@app.command("list")
def list_(
    run: Annotated[str | None, typer.Option(help="Only this run.")] = None,
    status: Annotated[
        str, typer.Option(help="pending, approved, rejected, expired or all.")
    ] = "pending",
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
) -> None:
    """Items in the queue (expired ones are closed first)."""
    from sluice.review.actions import pending
    from sluice.runids import check_run_id

    if run is not None:
        check_run_id(run)
    settings = get_settings()
    items = pending(
        settings.effective_database_url,
        run,
        None if status == "all" else status,
        limit,
        settings.clock,
    )
    rows = [
        [i.review_id, i.run_id, i.customer_id, i.channel, f"{i.gate}: {i.reason}", i.status]
        for i in items
    ]
    console.print(
        table("Review queue", ["id", "run", "customer", "channel", "why", "status"], rows)
    )
    emit_json({"items": [i.summary() for i in items]})


@app.command("show")
def show(review_id: Annotated[str, typer.Argument()]) -> None:
    """One item: why it waits, and the message itself."""
    from sluice.review.actions import show as get

    settings = get_settings()
    item = get(review_id, settings.effective_database_url, settings.clock)
    rows = [[k, v] for k, v in item.summary().items() if v is not None]
    rows += [[f"message.{k}", v] for k, v in item.copy().items()]
    console.print(table(f"Review {review_id}", ["", ""], rows))
    emit_json({**item.summary(), "copy": item.copy()})


@app.command("approve")
def approve(
    review_id: Annotated[str, typer.Argument()],
    by: Annotated[str, typer.Option(help="Who approves.")],
) -> None:
    """Approve: the message passes the other gates and the ledger, then goes out."""
    from sluice.review.actions import approve as run

    settings = get_settings()
    item = run(review_id, by, settings.effective_database_url, settings.home_dir, settings.clock)
    console.print(f"{review_id}: approved by {by}; {item.result}")
    emit_json(item.summary())


@app.command("reject")
def reject(
    review_id: Annotated[str, typer.Argument()],
    by: Annotated[str, typer.Option(help="Who rejects.")],
    reason: Annotated[str, typer.Option(help="Why.")],
) -> None:
    """Reject: the message is never sent; who and why are recorded."""
    from sluice.review.actions import reject as run

    settings = get_settings()
    item = run(review_id, by, reason, settings.effective_database_url, settings.clock)
    console.print(f"{review_id}: rejected by {by} ({reason})")
    emit_json(item.summary())
