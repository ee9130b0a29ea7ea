"""The command line as a user runs it: a subprocess, exit codes, the closing JSON line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq


def sluice(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SLUICE_HOME": str(home), "COLUMNS": "120"}
    return subprocess.run(
        [sys.executable, "-m", "sluice", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def test_synth_then_features_end_with_a_json_line(tmp_path: Path) -> None:
    done = sluice(
        "data",
        "synth",
        "--customers",
        "2000",
        "--seed",
        "3",
        "--as-of",
        "2026-07-01",
        "--out",
        str(tmp_path / "d"),
        home=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    figures = last_json(done.stdout)
    assert figures["history_end"] == "2026-06-30" and figures["valid_cutoff"] == "2026-04-01"
    assert figures["customers"] == 2000 and figures["transactions"] > 0
    out = tmp_path / "f.parquet"
    built = sluice(
        "features",
        "build",
        "--data",
        str(tmp_path / "d"),
        "--cutoff",
        "2026-01-01",
        "--out",
        str(out),
        home=tmp_path,
    )
    assert built.returncode == 0, built.stderr
    assert last_json(built.stdout)["labelled"] is True
    assert pq.ParquetFile(out).metadata.num_row_groups >= 1


def test_errors_name_the_field_and_exit_2(tmp_path: Path) -> None:
    both = sluice(
        "features",
        "build",
        "--data",
        "x",
        "--transactions",
        "y",
        "--cutoff",
        "2026-01-01",
        "--out",
        "o.parquet",
        home=tmp_path,
    )
    assert both.returncode == 2
    error = json.loads(both.stderr.strip().splitlines()[-1])["error"]
    assert error == {
        "code": "invalid_input",
        "message": "give exactly one of --data or --transactions",
        "field": "data",
    }
    missing = sluice(
        "score",
        "--audience",
        str(tmp_path),
        "--out",
        str(tmp_path / "o"),
        "--model",
        "nope@champion",
        home=tmp_path,
    )
    assert missing.returncode == 2
    assert json.loads(missing.stderr.strip().splitlines()[-1])["error"]["code"] == "model_not_found"
    champion = sluice("models", "promote", "1", home=tmp_path)
    assert champion.returncode == 2 and "models approve VERSION --by NAME" in champion.stderr
    bad_floor = sluice("models", "approve", "1", "--by", "ana", "--floor", "roc_auc", home=tmp_path)
    assert bad_floor.returncode == 2 and "METRIC=NUMBER" in bad_floor.stderr


def test_gates_check_judges_each_line_and_ends_with_counts(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    lines = [
        {
            "offer_id": "spring-boots-20",
            "channel": "sms",
            "text": "Hi {first_name}, trail boots 20% off",
            "slots": {"first_name": "Zoë"},
        },
        {"offer_id": "spring-boots-20", "channel": "sms", "text": "Trail boots ７０％ off"},
        {"offer_id": "spring-boots-20", "channel": "sms", "text": "Boots at shop.exаmple.com"},
        {"offer_id": "spring-boots-20", "channel": "fax", "text": "x"},
    ]
    copy = tmp_path / "copy.jsonl"
    copy.write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n")
    done = sluice(
        "gates",
        "check",
        str(repo / "jobs" / "spring-boots.yaml"),
        "--copy",
        str(copy),
        home=tmp_path / "home",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "line 2: fail claims/claim_percentage" in done.stdout
    assert "line 4: invalid invalid_field (channel:" in done.stdout
    assert last_json(done.stdout) == {
        "lines": 5,
        "by_outcome": {"fail": 2, "invalid": 2, "pass": 1},
        "by_reason": {
            "claims:claim_percentage": 1,
            "injection:mixed_script_host": 1,
            "line:invalid_field": 1,
            "line:not_json": 1,
        },
    }
