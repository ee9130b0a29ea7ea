"""The ``sluice`` command line."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import typer
from typer.core import TyperGroup

from sluice.cli import (
    audit_cmd,
    bench_cmd,
    campaign_cmd,
    contracts_cmd,
    data_cmd,
    features_cmd,
    feedback_cmd,
    gates_cmd,
    journey_cmd,
    llm_cmd,
    models_cmd,
    orchestrator_cmd,
    review_cmd,
)
from sluice.cli.demo_cmd import demo
from sluice.cli.output import fail
from sluice.cli.score_cmd import score
from sluice.cli.serve_cmd import keys_app, serve
from sluice.cli.train_cmd import train
from sluice.errors import SluiceError

DATA = "Data and models"
SERVING = "Serving"
CAMPAIGNS = "Campaigns and journeys"
OPERATIONS = "Operations"
BENCHMARKS = "Benchmarks"
HELP_PANELS = (DATA, SERVING, CAMPAIGNS, OPERATIONS, BENCHMARKS)
"""The panels of ``sluice --help``, by what a user is doing, in the order they are listed."""

_ORDER: list[str] = []
"""Command and group names in the order they are registered below."""


class _RegistrationOrder(TyperGroup):
    """Lists commands and sub-apps together in registration order.

    Typer lists plain commands before sub-apps; rich shows the panels in the order their
    first command is listed, so this keeps both the panels and their rows as registered.
    """

    def list_commands(self, ctx: Any) -> list[str]:  # typer's own (vendored) click Context
        rank = {name: i for i, name in enumerate(_ORDER)}
        return sorted(super().list_commands(ctx), key=lambda n: rank.get(n, len(rank)))


app = typer.Typer(
    cls=_RegistrationOrder,
    help="Sluice: score customer bases, draft copy, deliver only what passed every gate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _group(panel: str, name: str, sub: typer.Typer) -> None:
    app.add_typer(sub, name=name, rich_help_panel=panel)
    _ORDER.append(name)


def _command(panel: str, name: str, function: Callable[..., Any]) -> None:
    app.command(name, rich_help_panel=panel)(function)
    _ORDER.append(name)


_group(DATA, "data", data_cmd.app)
_group(DATA, "features", features_cmd.app)
_group(DATA, "contracts", contracts_cmd.app)
_group(DATA, "models", models_cmd.app)
_command(DATA, "train", train)
_command(DATA, "score", score)

_command(SERVING, "serve", serve)
_group(SERVING, "keys", keys_app)
_group(SERVING, "llm", llm_cmd.app)

_group(CAMPAIGNS, "campaign", campaign_cmd.app)
_group(CAMPAIGNS, "journey", journey_cmd.app)
_group(CAMPAIGNS, "review", review_cmd.app)
_group(CAMPAIGNS, "gates", gates_cmd.app)
_command(CAMPAIGNS, "report", feedback_cmd.report)
_command(CAMPAIGNS, "kpis", feedback_cmd.kpis)
_group(CAMPAIGNS, "audit", audit_cmd.app)

_group(OPERATIONS, "orchestrator", orchestrator_cmd.app)
_group(OPERATIONS, "events", feedback_cmd.events_app)
_group(OPERATIONS, "incidents", feedback_cmd.incidents_app)
_command(OPERATIONS, "guardrails", feedback_cmd.guardrails)
_command(OPERATIONS, "mailsink", campaign_cmd.mailsink)
_command(OPERATIONS, "demo", demo)

_group(BENCHMARKS, "bench", bench_cmd.app)


def main() -> None:
    """Entry point: run the app, turning Sluice errors into a clear message and exit code."""
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    try:
        app(standalone_mode=True)
    except SluiceError as exc:
        fail(exc)
