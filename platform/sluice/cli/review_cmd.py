"""``sluice review ...``"""

from __future__ import annotations

from typing import Annotated

import typer

from sluice.cli.output import console, emit_json, table

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

    items = pending(run, None if status == "all" else status, limit)
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

    item = get(review_id)
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

    item = run(review_id, by)
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

    item = run(review_id, by, reason)
    console.print(f"{review_id}: rejected by {by} ({reason})")
    emit_json(item.summary())
