"""Where a benchmark's scratch files go."""

from __future__ import annotations

from pathlib import Path


def workdir(given: Path | None, name: str) -> Path:
    """``given``, else ``SLUICE_HOME/bench/<name>`` (replaced by each run)."""
    from sluice.settings import get_settings

    return given or get_settings().home_dir / "bench" / name
