"""The harmful-challenger scenario, as `sluice demo --scenario harmful-challenger` runs it:
canary -> outcome events -> guardrail fires -> arm paused, alias back, incident recorded ->
no more canary sends; and its report, opened in Chromium, shows the run's numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import and_, create_engine, func, select

from sluice.store.schema import audit, deliveries, incidents, operations, runs


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, object], Path]:
    home = tmp_path_factory.mktemp("scenario-home")
    env = {**os.environ, "SLUICE_HOME": str(home), "COLUMNS": "120"}
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run(  # from the repository root: the scenario starts from jobs/
        [
            sys.executable,
            "-m",
            "sluice",
            "demo",
            "--scenario",
            "harmful-challenger",
            "--customers",
            "12000",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), home


def test_a_harmful_challenger_is_caught_paused_and_rolled_back(
    scenario: tuple[dict[str, object], Path],
) -> None:
    figures, home = scenario
    assert set(figures) == {"rolled_back", "incident_id", "canary_sends_after_rollback", "report"}
    assert figures["rolled_back"] is True and figures["canary_sends_after_rollback"] == 0
    db = create_engine(f"sqlite:///{home / 'sluice.db'}")
    with db.connect() as conn:
        day1, day2 = [r[0] for r in conn.execute(select(runs.c.run_id).order_by(runs.c.started_at))]
        incident = conn.execute(
            select(incidents).where(incidents.c.incident_id == figures["incident_id"])
        ).one()
        assert incident.run_id == day1 and incident.arm == "canary" and incident.status == "open"
        evidence = json.loads(incident.evidence)
        fired = {f["name"]: f for f in evidence["fired"]}
        assert fired["complaints-vs-main"]["p_value"] < 0.05
        assert any("moved sluice-propensity@challenger" in a for a in json.loads(incident.actions))

        # day 1 sent canary messages; day 2 recorded its canary customers and sent none
        def sent(run_id: str, arm: str) -> int:
            return int(
                conn.execute(
                    select(func.count()).where(
                        and_(
                            deliveries.c.run_id == run_id,
                            deliveries.c.arm == arm,
                            deliveries.c.state == "sent",
                        )
                    )
                ).scalar_one()
            )

        assert sent(day1, "canary") > 200 and sent(day2, "canary") == 0 and sent(day2, "main") > 0
        paused = dict(
            conn.execute(
                select(audit.c.arm, func.count())
                .where(and_(audit.c.run_id == day2, audit.c.outcome == "arm_paused"))
                .group_by(audit.c.arm)
            ).all()
        )
        assert set(paused) == {"canary"} and paused["canary"] > 200
        kinds = [r[0] for r in conn.execute(select(operations.c.kind).order_by(operations.c.id))]
    assert kinds == ["approve", "pause", "rollback"]  # the challenger's approval was refused
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    champion = client.get_model_version_by_alias("sluice-propensity", "champion")
    challenger = client.get_model_version_by_alias("sluice-propensity", "challenger")
    assert challenger.version == champion.version  # the canary would now serve main's model
    harmful = client.get_model_version("sluice-propensity", "2")
    assert harmful.tags["rolled_back.challenger_reason"] == figures["incident_id"]


def test_the_report_renders_in_chromium_with_the_runs_numbers(
    scenario: tuple[dict[str, object], Path],
) -> None:
    pytest.importorskip("playwright")
    from sluice.report.browser import check_in_browser, find_chromium

    try:
        find_chromium()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    figures, home = scenario
    seen = check_in_browser(Path(str(figures["report"])))
    assert seen.console_errors == [] and seen.failed_requests == []
    assert seen.svg_rendered >= 4
    db = create_engine(f"sqlite:///{home / 'sluice.db'}")
    with db.connect() as conn:
        day1 = conn.execute(select(runs.c.run_id).order_by(runs.c.started_at)).first()[0]
        funnel = json.loads(
            conn.execute(select(runs.c.funnel).where(runs.c.run_id == day1)).scalar_one()
        )
        by_arm = dict(
            conn.execute(
                select(deliveries.c.arm, func.count())
                .where(and_(deliveries.c.run_id == day1, deliveries.c.state == "sent"))
                .group_by(deliveries.c.arm)
            ).all()
        )
    assert day1 in seen.title
    assert int(seen.values["canary.sent"]) == by_arm["canary"]
    assert int(seen.values["main.sent"]) == by_arm["main"]
    assert int(seen.values["holdout.recipients"]) == funnel["holdout"]
    assert int(seen.values["funnel.sent"]) == funnel["sent"]
    assert any(k.startswith("drift.") for k in seen.values)
