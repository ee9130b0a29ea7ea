"""How commands talk: a human summary first, then one JSON line scripts can read."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any, NoReturn

from rich.console import Console
from rich.table import Table

from sluice.errors import SluiceError

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)


def emit_json(figures: Mapping[str, Any]) -> None:
    """Print the closing JSON line (plain, never wrapped)."""
    sys.stdout.write(json.dumps(figures, default=str, sort_keys=False) + "\n")
    sys.stdout.flush()


def fail(error: SluiceError) -> NoReturn:
    """Report ``error`` on stderr (human line + JSON detail) and exit: 2 for the caller's
    mistakes (bad input, unknown names, refused changes), 1 for everything else. A Ray
    this process started is shut down first, so that what Ray prints as it stops comes
    before the closing JSON line, not after it."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()
    errors.print(f"[bold red]error:[/] {error.message}")
    sys.stderr.write(json.dumps({"error": error.to_dict()}, default=str) + "\n")
    sys.exit(2 if error.status_code in (404, 409, 422) else 1)


def table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c, justify="right" if c and c[0].isdigit() else "left")
    for r in rows:
        t.add_row(*[str(x) for x in r])
    return t
