"""The demo pipeline: synthesise a base, build features, train, promote, batch-score,
materialize the scored audience into the online store (decisions by customer id), then
run the example campaign (``jobs/spring-boots.yaml``) through the gates to a real
SMTP server, and the example journey (``jobs/cart-abandonment.yaml``) with the
orchestrator on a compressed clock.

Everything runs on embedded defaults under ``SLUICE_HOME``: a local Ray cluster, MLflow
on SQLite, local files, the local mail sink. The audience directory gets one malformed
partner upload beside the real features, so the summary shows rows quarantined with
their reasons. With the LLM (the default), the SmolLM2 checkpoint is prepared, the CPU
LLM app deployed on Ray Serve, and the campaign's most frequent prompt keys drafted by it
(the rest get the offers' approved copy); every draft passes the same gates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.parquet as pq

from sluice.contracts.clock import Clock
from sluice.data import SynthCalendar, SynthConfig, synthesize
from sluice.features import write_synthetic_features
from sluice.registry import Registry
from sluice.scoring import ScoreRequest, run_scoring
from sluice.settings import SluiceSettings
from sluice.training import TrainConfig, train

DEMO_CUSTOMERS = 50_000
"""The demo's default base: the whole demo, set-up included, in under ten minutes on two
cores (``--customers`` takes millions when the machine has them)."""


@dataclass(frozen=True)
class DemoConfig:
    customers: int = DEMO_CUSTOMERS
    seed: int = 7
    as_of: date | None = None
    """The synthetic world's today (its decision date); default: today on the clock."""
    workdir: Path | None = None
    """Where data and outputs go; default SLUICE_HOME/demo."""
    campaign: Path | None = Path("jobs/spring-boots.yaml")
    """The campaign to run at the end (None: stop after scoring)."""
    llm: bool = True
    """Draft copy for the top prompt keys with the CPU LLM deployment."""
    llm_prompts: int = 4
    llm_config: Path = Path("deployments/llm-cpu.yaml")
    journey: Path | None = Path("jobs/cart-abandonment.yaml")
    """The journey the orchestrator runs at the end (None: no journey)."""


def _malformed_upload(good: Path, out: Path) -> int:
    """Ten rows a partner might send: text in numeric columns, negative counts, unknown
    countries, a missing id, and no tenure column at all."""
    rows = pq.read_table(good).slice(0, 10)
    idx = rows.schema.get_field_index
    rows = rows.set_column(0, "customer_id", pa.array([f"partner-{i}" for i in range(9)] + [None]))
    rows = rows.set_column(
        idx("recency_days"), "recency_days", pa.array(["12", "n/a"] + ["3.5"] * 8)
    )
    rows = rows.set_column(idx("frequency_30d"), "frequency_30d", pa.array([0, 0, -2] + [1] * 7))
    rows = rows.set_column(
        idx("country"), "country", pa.array(["DE", "DE", "DE", "ZZ"] + ["US"] * 6)
    )
    rows = rows.drop_columns(["tenure_days"])
    pq.write_table(rows, out)
    return int(rows.num_rows)


def calendar_of(config_as_of: date | None, clock: Clock) -> SynthCalendar:
    """The demo world's dates: as of the given day, else today on Sluice's clock."""
    return SynthCalendar(config_as_of) if config_as_of else SynthCalendar.today(clock)


def synth_world(
    customers: int, seed: int, calendar: SynthCalendar, data: Path, work: Path, audience: Path
) -> int:
    """A synthetic base as of ``calendar``, with train, validation and audience features."""
    synth = synthesize(SynthConfig(customers=customers, seed=seed, end=calendar.history_end), data)
    write_synthetic_features(data, calendar.train_cutoff, work / "features-train.parquet")
    write_synthetic_features(data, calendar.valid_cutoff, work / "features-valid.parquet")
    write_synthetic_features(data, calendar.score_cutoff, audience)
    return synth.customers


def run_demo(
    config: DemoConfig, settings: SluiceSettings, step: Callable[[str], None] = lambda _: None
) -> dict[str, Any]:
    """Run every stage with ``settings`` (the stores, the clock); returns the figures the
    closing JSON line carries."""
    work = config.workdir or settings.home_dir / "demo"
    data, audience = work / "data", work / "audience"
    audience.mkdir(parents=True, exist_ok=True)
    calendar = calendar_of(config.as_of, settings.clock)

    step(
        f"Synthesising {config.customers:,} customers as of {calendar.as_of} and building "
        "point-in-time features (train, validation, audience)"
    )
    customers = synth_world(
        config.customers, config.seed, calendar, data, work, audience / "features.parquet"
    )
    _malformed_upload(audience / "features.parquet", audience / "partner-upload.parquet")

    step("Training LightGBM and registering it in MLflow as challenger")
    trained = train(work / "features-train.parquet", work / "features-valid.parquet", TrainConfig())
    registry = Registry(settings)
    version = registry.register(trained)

    step(f"Approving version {version.version} as champion (held-out window, floors, drift)")
    from sluice.approval import approve

    window = work / "features-valid.parquet"
    approve(version.version, "demo-analyst", window=window, registry=registry)

    if config.campaign is not None and config.llm:
        # One local cluster for scoring, Serve and the LLM replica: more logical CPUs than
        # cores, so the LLM's placement group and the ingress fit beside Ray Data.
        import os

        from sluice.runtime import ensure_ray

        ensure_ray(num_cpus=max(8, 2 * (os.cpu_count() or 1)), namespace="serve")

    step("Batch-scoring the audience on Ray Data with sluice-propensity@champion")
    report = run_scoring(
        ScoreRequest(
            audience=str(audience),
            model="sluice-propensity@champion",
            out=work / "scores",
            overwrite=True,
            progress=False,
        ),
        registry,
    )
    online = _materialize(audience / "features.parquet", settings, step)
    figures: dict[str, Any] = {}
    if config.campaign is not None:
        figures = _campaign(config, settings, work, calendar, step)
    if config.journey is not None:
        from sluice.demo.journey import JourneyDemo, run_journey_demo

        figures.update(run_journey_demo(JourneyDemo(spec=config.journey), settings, work, step))
    return {
        **figures,
        "as_of": calendar.as_of.isoformat(),
        "customers": customers,
        "model_version": version.version,
        "roc_auc": round(trained.evaluation.roc_auc, 4),
        "pr_auc": round(trained.evaluation.pr_auc, 4),
        "top_decile_lift": round(trained.evaluation.lift[0].lift, 3),
        "scored": report.scored,
        "quarantined": report.quarantined,
        "quarantine_reasons": report.reasons,
        "rows_per_s": report.rows_per_s,
        "predictor": report.predictor,
        "scores": str(work / "scores"),
        "online_store": online,
    }


def _materialize(
    features: Path, settings: SluiceSettings, step: Callable[[str], None]
) -> dict[str, Any]:
    """The scored audience into the online store, for decisions by customer id."""
    from sluice.contracts.propensity import PROPENSITY_V1
    from sluice.online import OnlineStore, OnlineStoreConfig, materialize

    config = OnlineStoreConfig.from_settings(settings)
    step(f"Materializing the audience's features into the online store ({config.url})")
    report = materialize(features, PROPENSITY_V1, OnlineStore(config, PROPENSITY_V1))
    config.write_feature_store_yaml(config.registry.parent)
    return {
        "rows": report.rows,
        "rows_per_s": report.rows_per_s,
        "store": report.store,
        "features_at": report.features_at,
    }


def _campaign(
    config: DemoConfig,
    settings: SluiceSettings,
    work: Path,
    calendar: SynthCalendar,
    step: Callable[[str], None],
) -> dict[str, Any]:
    """Run the example campaign against a local mail sink; the LLM drafts if enabled."""

    import yaml

    from sluice.campaign.run import run_campaign
    from sluice.devtools.mailsink import MailSink

    assert config.campaign is not None
    if not config.campaign.is_file():
        raise FileNotFoundError(
            f"--campaign: {config.campaign} not found (run the demo from the repository root)"
        )
    spec = yaml.safe_load(config.campaign.read_text())
    spec["audience"]["features"] = str(work / "audience")
    spec["audience"]["customers"] = str(work / "data" / "customers.parquet")
    spec["decision_date"] = calendar.as_of.isoformat()
    base_url = None
    if config.llm:
        from sluice.generation.model_prep import model_dir, prepare
        from sluice.serve.launcher import require_ready, serve_llm_app

        step("Preparing the SmolLM2 checkpoint (sluice llm prepare)")
        prepare(model_dir(settings.home_dir))
        step(f"Deploying the CPU LLM app on Ray Serve ({config.llm_config})")
        # Ready means answering: every deployment running and a chat completion back.
        served = require_ready(serve_llm_app(config.llm_config, None, None, False, 900, None, step))
        base_url = f"{served.url}/v1"
        spec["copy"] = {
            **spec.get("copy", {}),
            "mode": "generate",
            "llm_url": base_url,
            "allow_hosts": [urlsplit(base_url).hostname],  # the local deployment
            "max_prompts": config.llm_prompts,
        }
    sink = MailSink(work / "mail").start()
    spec["channels"]["email"].update(
        host="127.0.0.1",
        port=sink.smtp_port,
        reconcile_url=sink.status_url,
        allow_hosts=["127.0.0.1"],  # the local mail sink: loopback needs allowing
    )
    path = work / "campaign.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    try:
        step(f"Running campaign {spec['campaign_id']}: gates, ledger, SMTP to a local mail sink")
        result = run_campaign(path, settings=settings)
    finally:
        sink.stop()
        if base_url is not None:
            from ray import serve

            serve.shutdown()
    from sluice.campaign.spec import expand

    outboxes = {
        expand(c["path"], settings.home_dir) / result.run_id
        for c in spec["channels"].values()
        if c.get("transport") == "outbox"
    }
    outbox_messages = sum(
        len(p.read_text().splitlines()) for d in outboxes for p in d.glob("*.jsonl")
    )
    from sluice.report.data import write_report
    from sluice.store.db import connect

    report = write_report(
        connect(settings.effective_database_url), result.run_id, work / "report.html"
    )
    step(f"Campaign report written to {report}")
    return {
        "report": str(report),
        "campaign_run_id": result.run_id,
        "outbox_messages": outbox_messages,
        "funnel": result.funnel,
        "generation": result.generation,
        "emails_received": len(sink.store.attempts),
        "mail": str(work / "mail"),
        "campaign_s": round(result.seconds, 1),
    }
