"""``sluice bench journeys`` at a tiny size: every phase runs and the JSON line adds up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sluice.bench.journeys import run_journeys_bench
from sluice.cli.app import app

KEYS = {
    "instances",
    "entries_per_s",
    "steps_per_s",
    "timer_lag_p50_ms",
    "timer_lag_p99_ms",
    "peak_rss_mb",
    "ratio",
    "baseline_msgs_per_s",
}


def test_the_journeys_bench_ends_with_a_json_line_that_adds_up(tmp_path: Path) -> None:
    args = ["bench", "journeys", "--instances", "1000", "--advance", "100"]
    args += ["--due-rate", "50", "--seconds", "1", "--poll", "0.05"]
    result = CliRunner().invoke(app, [*args, "--workdir", str(tmp_path / "w")])
    assert result.exit_code == 0, result.output
    r = json.loads(result.output.strip().splitlines()[-1])
    assert set(r) >= KEYS
    assert r["instances"] == r["live_instances"] == 1000
    assert r["entries_per_s"] > 0
    # Each advanced instance: its wait's step row and its send's, one send each.
    assert r["stepped"] == r["sends"] == 100 and r["steps"] == 200
    assert r["outcomes"]["grace:waited"] == 100
    assert r["outcomes"].get("email:sent", 0) + r["outcomes"].get("email:holdout", 0) == 100
    assert 0 < r["outcomes"].get("email:holdout", 0) < 40  # 10% holdout
    assert 0 <= r["steps_pipeline_s"] <= r["steps_s"]
    assert r["timers"] == r["timers_done"] == 50
    assert 0 <= r["timer_lag_p50_ms"] <= r["timer_lag_p99_ms"] <= r["timer_lag_max_ms"]
    assert r["baseline_messages"] == 100 and r["baseline_msgs_per_s"] > 0
    assert r["ratio"] == pytest.approx(r["steps_per_s"] / r["baseline_msgs_per_s"], rel=0.05)
    assert r["peak_rss_mb"] > 0
    # The outbox holds the steps phase's emails and those of the timers not held out.
    lines = sum(
        len(p.read_text().splitlines()) for p in (tmp_path / "w" / "outbox").rglob("*.jsonl")
    )
    assert r["outcomes"]["email:sent"] < lines <= r["outcomes"]["email:sent"] + 50


def test_too_few_instances_for_the_timers_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timers"):
        run_journeys_bench(1000, 1000, 10, tmp_path / "w")
    assert not (tmp_path / "w").exists()
