"""The ``sluice`` command line."""

from __future__ import annotations

import logging

import typer

from sluice.cli import (
    audit_cmd,
    bench_cmd,
    campaign_cmd,
    data_cmd,
    features_cmd,
    feedback_cmd,
    gates_cmd,
    llm_cmd,
    models_cmd,
    review_cmd,
)
from sluice.cli.demo_cmd import demo
from sluice.cli.output import fail
from sluice.cli.score_cmd import score
from sluice.cli.serve_cmd import keys_app, serve
from sluice.cli.train_cmd import train
from sluice.errors import SluiceError

app = typer.Typer(
    help="Sluice: score customer bases, draft copy, deliver only what passed every gate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data_cmd.app, name="data")
app.add_typer(features_cmd.app, name="features")
app.add_typer(models_cmd.app, name="models")
app.add_typer(bench_cmd.app, name="bench")
app.add_typer(keys_app, name="keys")
app.add_typer(llm_cmd.app, name="llm")
app.add_typer(campaign_cmd.app, name="campaign")
app.add_typer(review_cmd.app, name="review")
app.add_typer(gates_cmd.app, name="gates")
app.add_typer(audit_cmd.app, name="audit")
app.add_typer(feedback_cmd.events_app, name="events")
app.add_typer(feedback_cmd.incidents_app, name="incidents")
app.command("kpis")(feedback_cmd.kpis)
app.command("guardrails")(feedback_cmd.guardrails)
app.command("report")(feedback_cmd.report)
app.command("mailsink")(campaign_cmd.mailsink)
app.command("train")(train)
app.command("score")(score)
app.command("demo")(demo)
app.command("serve")(serve)


def main() -> None:
    """Entry point: run the app, turning Sluice errors into a clear message and exit code."""
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    try:
        app(standalone_mode=True)
    except SluiceError as exc:
        fail(exc)
