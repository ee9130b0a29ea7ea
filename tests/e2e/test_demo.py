"""The demo path, as `make demo` runs it (smaller base, two LLM prompts), in a fresh
process: real vLLM on CPU drafts copy that reaches the mail sink."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq


def test_demo_runs_end_to_end(tmp_path: Path, prepared_llm: Path) -> None:
    home = tmp_path / "home"
    # The checkpoint the run has prepared already: the demo finds it intact (its marker
    # names the packaged model's digest) and skips the conversion.
    (home / "models").mkdir(parents=True)
    (home / "models" / prepared_llm.name).symlink_to(prepared_llm, target_is_directory=True)
    env = {**os.environ, "SLUICE_HOME": str(home), "COLUMNS": "120"}
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run(  # run from the repository root: the demo runs jobs/spring-boots.yaml
        [sys.executable, "-m", "sluice", "demo", "--customers", "20000", "--llm-prompts", "2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["customers"] == 20_000
    assert figures["roc_auc"] > 0.7 and figures["top_decile_lift"] > 2
    # The malformed partner upload: ten rows, every one quarantined with its reasons.
    assert figures["quarantined"] == 10
    assert figures["quarantine_reasons"]["tenure_days"] == 10
    scores = pq.read_table(Path(figures["scores"]) / "scores")
    assert scores.num_rows == figures["scored"] == 20_000
    assert set(scores.column("model_version").to_pylist()) == {figures["model_version"]}
    # The example campaign ran through the gates to the local mail sink.
    funnel = figures["funnel"]
    assert funnel["scored"] == 20_000 and funnel["failed"] == 0
    assert figures["emails_received"] > 0 and figures["outbox_messages"] > 0
    assert figures["emails_received"] + figures["outbox_messages"] == funnel["sent"]
    assert funnel["holdout"] > 0 and funnel["selected"] > funnel["sent"]
    # The LLM drafted the two most frequent prompt keys; every draft was judged by the
    # content gates, and generated copy was delivered (the rest fell back with a reason).
    g = figures["generation"]
    assert g["prompts"] == 2 and g["generated"] + g["fallback"] == 2, g
    assert g["llm_drafts"] == g["generated"] and g["passed"] >= 1, g
    assert g["passed"] + sum(g["rejected"].values()) == g["llm_drafts"]
    assert funnel["copy"]["generated"]["sent"] >= 1, funnel["copy"]
    assert "LLM drafts that passed every gate" in done.stdout
    # ... and its report, self-contained HTML with the run id in it.
    report = Path(figures["report"]).read_text()
    assert figures["campaign_run_id"] in report and "http://" not in report
    # The cart-abandonment journey, run by the orchestrator from the event stream: buyers
    # left at once, the rest got the reminder in the mail sink (or wait for their morning).
    journey = figures["journey"]
    steps = {step["step"]: step["outcomes"] for step in journey["steps"]}
    assert journey["entries"] > 1_000
    assert journey["exited"].get("event:purchase", 0) > 100
    reminded = steps["remind"].get("sent", {}).get("treated", 0)
    assert reminded > 0 and figures["journey_emails_received"] == reminded
    assert steps["remind"]["holdout"]["holdout"] > 0
    assert "sent" not in steps["remind"] or "holdout" not in steps["remind"]["sent"]
