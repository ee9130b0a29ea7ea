"""Campaign runs end to end: Ray Data candidates, the coordinator actor, real SMTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml
from sqlalchemy import func, select

from sluice.campaign.run import run_campaign
from sluice.devtools.mailsink import MailSink
from sluice.registry import VersionInfo
from sluice.settings import SluiceSettings
from sluice.store import connect
from sluice.store.ledger import Ledger
from sluice.store.runs import Runs
from sluice.store.schema import audit, contact_counts


@pytest.fixture(scope="module")
def sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailSink]:
    s = MailSink(tmp_path_factory.mktemp("mail")).start()
    yield s
    s.stop()


def write_spec(
    path: Path, synth_dir: Path, features_dir: Path, sink: MailSink, campaign: str, **overrides: Any
) -> Path:
    spec: dict[str, Any] = {
        "campaign_id": campaign,
        "name": campaign,
        "audience": {
            "features": str(features_dir / "audience.parquet"),
            "customers": str(synth_dir / "customers.parquet"),
            "limit": 1_500,
        },
        "channels": {
            "email": {
                "transport": "smtp",
                "port": sink.smtp_port,
                "reconcile_url": sink.status_url,
                "allow_hosts": ["127.0.0.1"],
                "concurrency": 4,
            },
            "sms": {"transport": "outbox", "path": str(path.parent / "outbox")},
            "push": {"transport": "outbox", "path": str(path.parent / "outbox")},
        },
        "gates": {"frequency_cap": {"per_day": 1}, "quiet_hours": None},
        "holdout_pct": 10,
        "batch_size": 400,
    }
    for key, value in overrides.items():
        spec[key] = value
    path.write_text(yaml.safe_dump(spec))
    return path


def emails_of(sink: MailSink, run_id: str) -> list[Any]:
    return [m for m in sink.store.messages() if m["X-Sluice-Run"] == run_id]


def test_campaign_delivers_gated_messages_once_and_records_everything(
    settings: SluiceSettings,
    champion: VersionInfo,
    synth_dir: Path,
    features_dir: Path,
    sink: MailSink,
    tmp_path: Path,
) -> None:
    spec = write_spec(tmp_path / "c.yaml", synth_dir, features_dir, sink, "it-main")
    result = run_campaign(spec, run_id="it-main-1", settings=settings)
    f = result.funnel
    assert f["audience"] == f["scored"] == 1_500 and f["quarantined"] == 0
    assert 100 < f["holdout"] < 200 and f["holdout"] + f["no_offer"] + f["selected"] == f["scored"]
    assert f["sent"] > 0 and f["failed"] == 0 and f["pending"] == 0
    outbox = list((tmp_path / "outbox" / "it-main-1").glob("*.jsonl"))
    lines = [json.loads(x) for p in outbox for x in p.read_text().splitlines()]
    mails = emails_of(sink, "it-main-1")
    assert len(mails) + len(lines) == f["sent"]
    # Every message is for a customer who consented to that channel.
    customers = {
        r["customer_id"]: r for r in pq.read_table(synth_dir / "customers.parquet").to_pylist()
    }
    for m in mails:
        assert customers[m["X-Sluice-Customer"]]["consent_email"] is True
    for line in lines:
        assert customers[line["customer_id"]][f"consent_{line['channel']}"] is True
    engine = connect(settings.effective_database_url)
    with engine.connect() as conn:
        recorded = conn.execute(select(func.count()).where(audit.c.run_id == "it-main-1")).scalar()
        verdicts = (
            conn.execute(
                select(audit.c.verdicts).where(
                    audit.c.run_id == "it-main-1", audit.c.outcome == "reserved"
                )
            )
            .scalars()
            .first()
        )
    assert recorded == 1_500
    assert [v["gate"] for v in json.loads(verdicts)] == [
        "schema",
        "consent",
        "suppression",
        "injection",
        "pii",
        "claims",
        "brand_safety",
        "channel_format",
        "frequency_cap",
    ]
    # A rerun of the same run id sends nothing again and reports the same funnel.
    attempts = sum(sink.store.attempts.values())
    again = run_campaign(spec, run_id="it-main-1", settings=settings)
    assert sum(sink.store.attempts.values()) == attempts
    assert dict(again.funnel) == f
    assert Ledger(engine).counts("it-main-1")["sent"] == f["sent"]


def test_dry_run_reserves_nothing(
    settings: SluiceSettings,
    champion: VersionInfo,
    synth_dir: Path,
    features_dir: Path,
    sink: MailSink,
    tmp_path: Path,
) -> None:
    engine = connect(settings.effective_database_url)
    with engine.connect() as conn:
        before = conn.execute(select(func.coalesce(func.sum(contact_counts.c.n), 0))).scalar()
    spec = write_spec(
        tmp_path / "c.yaml", synth_dir, features_dir, sink, "it-dry", dry_run_sample=7
    )
    result = run_campaign(spec, run_id="it-dry-1", dry_run=True, settings=settings)
    assert result.dry_run and result.funnel["would_send"] > 0 and result.funnel["sent"] == 0
    assert Ledger(engine).counts("it-dry-1") == {}
    with engine.connect() as conn:
        assert (
            conn.execute(select(func.coalesce(func.sum(contact_counts.c.n), 0))).scalar() == before
        )
    assert result.sample and len(Path(result.sample).read_text().splitlines()) == 7
    assert not emails_of(sink, "it-dry-1")


def test_quiet_hours_defer_instead_of_dropping(
    settings: SluiceSettings,
    champion: VersionInfo,
    synth_dir: Path,
    features_dir: Path,
    sink: MailSink,
    tmp_path: Path,
) -> None:
    spec = write_spec(
        tmp_path / "c.yaml",
        synth_dir,
        features_dir,
        sink,
        "it-quiet",
        gates={"frequency_cap": None, "quiet_hours": {"start": "00:00", "end": "23:59:59"}},
        audience={
            "features": str(features_dir / "audience.parquet"),
            "customers": str(synth_dir / "customers.parquet"),
            "limit": 300,
        },
    )
    result = run_campaign(spec, run_id="it-quiet-1", settings=settings)
    assert result.funnel["sent"] == 0 and result.funnel["deferred"] > 0
    rows = Ledger(connect(settings.effective_database_url)).rows("it-quiet-1")
    assert rows and all(r.state == "deferred" and r.send_after is not None for r in rows)
    again = run_campaign(
        spec, run_id="it-quiet-1", settings=settings
    )  # not due yet: still deferred, nothing sent
    assert again.funnel["deferred"] == result.funnel["deferred"] and not emails_of(
        sink, "it-quiet-1"
    )


def test_an_authenticated_relay_gets_the_campaign_through_the_coordinator(
    settings: SluiceSettings,
    champion: VersionInfo,
    synth_dir: Path,
    features_dir: Path,
    tmp_path: Path,
    relay_password: tuple[str, str],
) -> None:
    """The relay requires AUTH; the password is read where the run delivers (the
    coordinator actor's environment), never carried in the spec or an actor argument."""
    SMTP_PASSWORD_ENV, SMTP_PASSWORD = relay_password

    relay = MailSink(tmp_path / "relay", credentials=("sluice", SMTP_PASSWORD)).start()
    try:
        email = {
            "transport": "smtp",
            "port": relay.smtp_port,
            "reconcile_url": relay.status_url,
            "allow_hosts": ["127.0.0.1"],
            "username": "sluice",
            "password_env": SMTP_PASSWORD_ENV,
        }
        spec = write_spec(
            tmp_path / "auth.yaml",
            synth_dir,
            features_dir,
            relay,
            "it-auth",
            channels={"email": email},
            audience={
                "features": str(features_dir / "audience.parquet"),
                "customers": str(synth_dir / "customers.parquet"),
                "limit": 300,
            },
        )
        f = run_campaign(spec, run_id="it-auth-1", settings=settings).funnel
        mails = emails_of(relay, "it-auth-1")
        assert f["sent"] > 0 and f["failed"] == 0 and len(mails) == f["sent"], f
        # The run's stored spec names the variable, never the secret.
        record = Runs(connect(settings.effective_database_url)).get("it-auth-1")
        assert record is not None and SMTP_PASSWORD not in json.dumps(record.spec)
        assert record.spec["channels"]["email"]["password_env"] == SMTP_PASSWORD_ENV
    finally:
        relay.stop()
