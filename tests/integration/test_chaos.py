"""The chaos test: ``sluice bench crash`` on SQLite and on PostgreSQL.

At least 20 SIGKILLs of the campaign driver, the coordinator and approvals in flight,
across the run's phases, with a racing resume; then an oracle that knows only the inputs
says who must have received exactly one email, and the SMTP server says who did.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sluice.bench.crash import run_crash_bench


@pytest.mark.slow
def test_twenty_kills_lose_nothing_and_send_nothing_twice(
    database_url: str, tmp_path: Path
) -> None:
    report = run_crash_bench(tmp_path / "crash", 800, 20, database_url, seed=11)
    assert report.kills >= 20, report
    assert report.expected > 300 and report.reviewed > 0, report
    assert report.duplicates == 0 and report.lost == 0 and report.unexpected == 0, report
    assert report.received == report.expected
    # Every phase was hit: before delivery, during booking and delivery, in approvals.
    assert set(report.by_phase) == {"candidates-copy", "booking-delivery", "approval"}, report
