"""``sluice demo --scenario harmful-challenger``: the safe-rollout path end to end.

1. A base is synthesised; a champion is trained and approved on a held-out window.
2. A harmful challenger is trained on inverted labels (a broken label pipeline) and
   registered as ``challenger``; its approval is refused by the metric floors, but a
   canary may still try it on a share of the audience, watched by guardrails.
3. Day 1: the campaign runs on half of the audience (holdout / canary / main), email to
   a local SMTP server. The feedback simulator turns what happened into outcome events
   (from the customers' latent propensities), which are ingested like any others.
4. The guardrails, evaluated as events arrive, fire: the canary arm is paused, the
   challenger alias rolled back, an incident opened with the evidence.
5. Day 2: the campaign runs on the other half; canary customers are recorded as
   ``arm_paused`` and nothing is sent to them. The report of day 1 is written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sluice.demo.pipeline import calendar_of, synth_world
from sluice.errors import PromotionRefusedError
from sluice.hashing import unit_hash
from sluice.settings import SluiceSettings

CAMPAIGN_ID = "spring-boots-canary"
GUARDRAILS = [
    {
        "name": "complaints-vs-main",
        "metric": "complaint_rate",
        "versus": "main",
        "max_ratio": 2.0,
        "p_value": 0.05,
        "min_sent": 200,
    },
    {
        "name": "conversion-lift",
        "metric": "conversion_rate",
        "versus": "holdout",
        "min_lift": 0.0,
        "p_value": 0.05,
        "min_sent": 200,
    },
]


@dataclass(frozen=True)
class ScenarioConfig:
    customers: int = 40_000
    seed: int = 7
    workdir: Path | None = None
    campaign: Path = Path("jobs/spring-boots.yaml")
    canary_pct: float = 25.0


def _inverted(src: Path, out: Path) -> Path:
    table = pq.read_table(src)
    i = table.schema.get_field_index("label")
    flipped = pc.subtract(pa.scalar(1, table.schema.field(i).type), table.column(i))
    pq.write_table(table.set_column(i, "label", flipped), out)
    return out


def _split(audience: Path, day1: Path, day2: Path) -> None:
    table = pq.read_table(audience)
    first = unit_hash(table.column("customer_id").to_pylist(), "demo:day") < 0.5
    for path, mask in ((day1, first), (day2, ~first)):
        path.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.filter(pa.array(mask)), path / "features.parquet")


def run_scenario(
    config: ScenarioConfig, settings: SluiceSettings, step: Callable[[str], None] = lambda _: None
) -> dict[str, Any]:
    import yaml

    from sluice.approval import approve
    from sluice.campaign.run import run_campaign
    from sluice.channels.unsubscribe import secret
    from sluice.devtools.mailsink import MailSink
    from sluice.feedback.ingest import ingest
    from sluice.feedback.simulator import simulate_run
    from sluice.registry import Registry
    from sluice.report.data import write_report
    from sluice.runtime import ensure_ray
    from sluice.store.db import connect
    from sluice.store.incidents import Incidents
    from sluice.store.recipients import sends_since
    from sluice.training import TrainConfig, train

    work = config.workdir or settings.home_dir / "scenario"
    data = work / "data"
    work.mkdir(parents=True, exist_ok=True)
    step(f"Synthesising {config.customers:,} customers and their features")
    calendar = calendar_of(None, settings.clock)
    synth_world(config.customers, config.seed, calendar, data, work, work / "audience.parquet")
    train_f, valid_f = work / "features-train.parquet", work / "features-valid.parquet"
    _split(work / "audience.parquet", work / "day1", work / "day2")

    registry = Registry(settings)
    step("Training the champion; approval on the held-out window by demo-analyst")
    champion = registry.register(train(train_f, valid_f, TrainConfig()))
    approve(champion.version, "demo-analyst", window=valid_f, registry=registry)

    step("Training a harmful challenger (inverted labels) and registering it as challenger")
    bad_train = _inverted(train_f, work / "features-train-inverted.parquet")
    bad_valid = _inverted(valid_f, work / "features-valid-inverted.parquet")
    challenger = registry.register(train(bad_train, bad_valid, TrainConfig()))
    try:
        approve(challenger.version, "demo-analyst", window=valid_f, registry=registry)
        refused = None
    except PromotionRefusedError as exc:
        refused = exc.message

    spec = yaml.safe_load(config.campaign.read_text())
    spec.update(campaign_id=CAMPAIGN_ID, name="Spring boots, challenger on canary")
    spec["canary"] = {
        "share_pct": config.canary_pct,
        "model": "sluice-propensity@challenger",
        "guardrails": GUARDRAILS,
    }
    spec["gates"] = {**spec.get("gates", {}), "quiet_hours": None}
    spec["audience"]["customers"] = str(data / "customers.parquet")
    for channel in ("sms", "push"):
        spec["channels"][channel]["path"] = str(work / "outbox")
    spec["decision_date"] = calendar.as_of.isoformat()
    sink = MailSink(work / "mail").start()
    spec["channels"]["email"].update(
        host="127.0.0.1",
        port=sink.smtp_port,
        reconcile_url=sink.status_url,
        allow_hosts=["127.0.0.1"],  # the local mail sink: loopback needs allowing
    )
    engine = connect(settings.effective_database_url)
    ensure_ray()
    try:
        runs: list[str] = []
        for day in ("day1", "day2"):
            spec["audience"]["features"] = str(work / day)
            path = work / f"campaign-{day}.yaml"
            path.write_text(yaml.safe_dump(spec, sort_keys=False))
            step(f"{day}: campaign {CAMPAIGN_ID} (holdout / canary / main) through the gates")
            result = run_campaign(path, settings=settings)
            runs.append(result.run_id)
            if day == "day1":
                step("Simulating outcome events from latent propensities; ingesting them")
                events = simulate_run(engine, result.run_id, data / "truth.parquet")
                key = secret(settings.home_dir)
                ingested = ingest(engine, events, "simulator", key, registry=registry)
    finally:
        sink.stop()

    opened = Incidents(engine).list(CAMPAIGN_ID)
    incident = next((i for i in opened if i.run_id == runs[0]), None)
    after = 0
    if incident is not None:
        after = sends_since(engine, CAMPAIGN_ID, "canary", incident.opened_at)
    now_challenger = registry.resolve("sluice-propensity@challenger").version
    report = write_report(engine, runs[0], work / "report.html")
    step(f"Report: {report}")
    return {
        "rolled_back": incident is not None and now_challenger != challenger.version,
        "incident_id": incident.incident_id if incident else None,
        "canary_sends_after_rollback": after,
        "report": str(report),
        "runs": runs,
        "champion_version": champion.version,
        "challenger_version": challenger.version,
        "challenger_now": now_challenger,
        "challenger_approval_refused": refused,
        "events": {"accepted": ingested.accepted, "suppressions": ingested.suppressions},
        "guardrails_fired": incident.evidence.get("fired") if incident else [],
        "incident_actions": incident.actions if incident else [],
    }
