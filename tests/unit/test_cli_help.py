"""``sluice --help`` groups the commands into panels by what a user is doing."""

from __future__ import annotations

import re

import pytest
import typer.main
from typer.core import TyperGroup
from typer.testing import CliRunner

from sluice.cli.app import HELP_PANELS, app

PANELS: dict[str, tuple[str, ...]] = {
    "Data and models": ("data", "features", "contracts", "models", "train", "score"),
    "Serving": ("serve", "keys", "llm"),
    "Campaigns and journeys": ("campaign", "journey", "review", "gates", "report", "kpis", "audit"),
    "Operations": ("orchestrator", "events", "incidents", "guardrails", "mailsink", "demo"),
    "Benchmarks": ("bench",),
}

# Rich frames the panels with box drawing characters (U+2500-U+257F), or with ASCII ones
# where it cannot draw those; both are blanked out when reading titles and command names.
_FRAME = re.compile(r"[\u2500-\u257f+|-]")


@pytest.fixture(scope="module")
def help_text() -> str:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return result.output


def _unframed(line: str) -> str:
    return _FRAME.sub(" ", line)


def _panel_titles(text: str) -> list[tuple[int, str]]:
    """(line number, title) of every panel heading, in the order shown."""
    found = [
        (i, title)
        for i, line in enumerate(text.splitlines())
        if (title := " ".join(_unframed(line).split())) in PANELS
    ]
    assert sorted(t for _, t in found) == sorted(PANELS), found
    return found


def _panels(text: str) -> dict[str, list[str]]:
    """The commands listed in each panel, in order.

    A command's row starts at the panel's least indented column; a help text too long for
    its row goes on in the rows below, further in, and those rows are skipped.
    """
    lines = text.splitlines()
    titles = _panel_titles(text)
    out: dict[str, list[str]] = {}
    for k, (start, title) in enumerate(titles):
        end = titles[k + 1][0] if k + 1 < len(titles) else len(lines)
        rows = [row for row in map(_unframed, lines[start + 1 : end]) if row.strip()]
        indent = min(len(row) - len(row.lstrip()) for row in rows)
        out[title] = [row.split()[0] for row in rows if len(row) - len(row.lstrip()) == indent]
    return out


def test_panels_are_listed_in_order(help_text: str) -> None:
    assert [title for _, title in _panel_titles(help_text)] == list(PANELS)
    assert list(HELP_PANELS) == list(PANELS)


def test_each_command_is_in_its_panel_in_order(help_text: str) -> None:
    assert _panels(help_text) == {title: list(names) for title, names in PANELS.items()}


def test_journey_is_listed_under_campaigns_and_journeys(help_text: str) -> None:
    titles = {title: i for i, title in _panel_titles(help_text)}
    first = [(_unframed(line).split() or [""])[0] for line in help_text.splitlines()]
    assert titles["Campaigns and journeys"] < first.index("journey") < titles["Operations"]
    assert titles["Operations"] < first.index("orchestrator") < titles["Benchmarks"]


def test_every_command_is_in_a_panel() -> None:
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    assert set(group.commands) == {name for names in PANELS.values() for name in names}
    panels = {getattr(cmd, "rich_help_panel", None) for cmd in group.commands.values()}
    assert panels == set(PANELS)
