"""How the report writes numbers and times (deterministic, so tests can read them back)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from html import escape
from typing import TypeGuard

NA = "n/a"


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _ok(x: float | None) -> TypeGuard[float]:
    return x is not None and math.isfinite(x)


def fmt_int(n: int) -> str:
    """``12345`` as ``12,345``."""
    return f"{n:,}"


def fmt_pct(x: float | None) -> str:
    """A rate as a percentage with 2 decimals (``0.0341`` as ``3.41%``)."""
    return f"{x * 100:.2f}%" if _ok(x) else NA


def fmt_pp(x: float | None) -> str:
    """A difference of rates in signed percentage points (``0.0052`` as ``+0.52 pp``)."""
    return f"{x * 100:+.2f} pp" if _ok(x) else NA


def fmt_money(x: float | None) -> str:
    """An amount with 2 decimals (``12345.6`` as ``12,345.60``)."""
    return f"{x:,.2f}" if _ok(x) else NA


def fmt_num(x: float | None, digits: int = 4) -> str:
    """A statistic with ``digits`` decimals."""
    return f"{x:.{digits}f}" if _ok(x) else NA


def fmt_time(t: datetime | None) -> str:
    """A timestamp in UTC (or as given when it has no time zone)."""
    if t is None:
        return "—"
    if t.tzinfo is not None:
        return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return t.strftime("%Y-%m-%d %H:%M:%S")


def _raw(x: float | None) -> str | None:
    if x is None or not math.isfinite(x):
        return None
    return str(x) if isinstance(x, int) else repr(float(x))
