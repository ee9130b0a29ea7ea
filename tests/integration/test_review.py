"""The review queue end to end: a campaign sends its ambiguous decisions to review; a
person approves some (they pass the other gates, the ledger, and reach the SMTP server
once), rejects others (recorded with who and why), and late items expire unsent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from sluice.auth import KeyStore, Scope
from sluice.campaign.run import run_campaign
from sluice.channels.unsubscribe import secret
from sluice.devtools.mailsink import MailSink
from sluice.registry import VersionInfo
from sluice.review import actions
from sluice.serve.backoffice_api import create_backoffice_api
from sluice.settings import SluiceSettings
from sluice.store import connect
from sluice.store.audit import AuditStore
from sluice.store.ledger import Ledger
from sluice.store.schema import reviews


@pytest.fixture(scope="module")
def sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailSink]:
    s = MailSink(tmp_path_factory.mktemp("mail")).start()
    yield s
    s.stop()


def cli_env(home: Path) -> dict[str, str]:
    """The CLI's environment: this one, with the session's Sluice home (the CLI is an
    edge: it reads its settings from its environment)."""
    return {**os.environ, "SLUICE_HOME": str(home), "COLUMNS": "200"}


def sluice(home: Path, *args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", "sluice", *args],
        capture_output=True,
        text=True,
        env=cli_env(home),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_review_approve_reject_and_expiry(
    settings: SluiceSettings,
    champion: VersionInfo,
    synth_dir: Path,
    features_dir: Path,
    sink: MailSink,
    tmp_path: Path,
) -> None:
    from tests.integration.test_campaign import emails_of, write_spec

    spec = write_spec(
        tmp_path / "r.yaml",
        synth_dir,
        features_dir,
        sink,
        "it-review",
        gates={
            "frequency_cap": None,
            "quiet_hours": None,
            "confidence": {"score_band": [0.0, 1.0]},  # every decision is "ambiguous"
        },
        channels={
            "email": {
                "transport": "smtp",
                "port": sink.smtp_port,
                "reconcile_url": sink.status_url,
                "allow_hosts": ["127.0.0.1"],
            }
        },
    )
    result = run_campaign(spec, run_id="it-review-1", settings=settings)
    f = result.funnel
    assert f["sent"] == 0 and f["review"] > 5
    items = actions.pending(settings.effective_database_url, "it-review-1", limit=10_000)
    assert len(items) == f["review"]
    assert {(i.gate, i.reason) for i in items} == {("confidence", "ambiguous_score")}

    # The CLI: list, show, approve.
    listed = sluice(settings.home_dir, "review", "list", "--run", "it-review-1", "--limit", "5000")
    assert len(listed["items"]) == len(items)  # type: ignore[arg-type]
    shown = sluice(settings.home_dir, "review", "show", items[0].review_id)
    assert shown["copy"]["subject"]  # type: ignore[index]
    approved = sluice(settings.home_dir, "review", "approve", items[0].review_id, "--by", "alice")
    assert approved["status"] == "approved" and approved["decided_by"] == "alice"
    assert approved["result"] == "sent"
    mails = emails_of(sink, "it-review-1")
    assert [m["X-Sluice-Customer"] for m in mails] == [items[0].customer_id]
    # Approving again sends nothing twice.
    again = subprocess.run(
        [sys.executable, "-m", "sluice", "review", "approve", items[0].review_id, "--by", "bob"],
        capture_output=True,
        text=True,
        env=cli_env(settings.home_dir),
        timeout=300,
    )
    assert again.returncode == 2 and "already approved by alice" in again.stderr
    assert len(emails_of(sink, "it-review-1")) == 1

    # The admin API: admin scope only; reject with who and why.
    store = KeyStore(settings.keys_file)
    admin, _ = store.create("it-admin", (Scope.ADMIN,))
    decide, _ = store.create("it-decide", (Scope.DECIDE,))

    app = create_backoffice_api(store, settings)
    # As Serve mounts it: under the back office's route prefix (the ASGI root path).
    client = TestClient(app, raise_server_exceptions=False, root_path="/backoffice")
    target = items[1].review_id
    url = f"/v1/admin/reviews/{target}/reject"
    body = {"by": "carol", "reason": "tone is off for this segment"}
    assert (
        client.post(url, json=body, headers={"Authorization": f"Bearer {decide}"}).status_code
        == 403
    )
    got = client.post(url, json=body, headers={"Authorization": f"Bearer {admin}"})
    assert got.status_code == 200, got.text
    assert got.json()["status"] == "rejected" and got.json()["note"] == body["reason"]
    record = AuditStore(connect(settings.effective_database_url)).record_of(
        "it-review-1", items[1].customer_id
    )
    assert record is not None and record["outcome"] == "rejected"
    assert json.loads(record["verdicts"])[-1]["detail"] == "by carol: tone is off for this segment"
    missing = client.post(
        "/v1/admin/reviews/nope/approve",
        json={"by": "x"},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert missing.status_code == 404 and missing.json()["field"] == "review_id"

    # Approving through the API records the approval (202, a status URL) and sends
    # nothing; the orchestrator's worker step delivers it, once.
    queued = items[3].review_id
    accepted = client.post(
        f"/v1/admin/reviews/{queued}/approve",
        json={"by": "erin"},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert accepted.status_code == 202, accepted.text
    status_url = accepted.headers["Location"]
    assert status_url == accepted.json()["status_url"]
    assert status_url == f"/backoffice/v1/admin/reviews/{queued}"
    assert accepted.json()["review"]["status"] == "approved"
    assert accepted.json()["review"]["result"] is None
    assert len(emails_of(sink, "it-review-1")) == 1
    again_api = client.post(
        f"/v1/admin/reviews/{queued}/approve",
        json={"by": "frank"},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert again_api.status_code == 202 and again_api.json()["review"]["decided_by"] == "erin"
    keys = secret(settings.home_dir)
    assert actions.deliver_approved(settings.effective_database_url, keys) == {"sent": 1}
    assert actions.deliver_approved(settings.effective_database_url, keys) == {}
    done = client.get(status_url, headers={"Authorization": f"Bearer {admin}"}).json()
    assert done["status"] == "approved" and done["result"] == "sent"
    sent_to = [m["X-Sluice-Customer"] for m in emails_of(sink, "it-review-1")]
    assert sorted(sent_to) == sorted([items[0].customer_id, items[3].customer_id])
    late_again = client.post(
        f"/v1/admin/reviews/{queued}/approve",
        json={"by": "frank"},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert late_again.status_code == 409 and "already approved by erin" in late_again.text

    # Expiry: an item whose window is over is closed, never sent.
    late = items[2].review_id
    with connect(settings.effective_database_url).begin() as conn:
        conn.execute(
            update(reviews)
            .where(reviews.c.review_id == late)
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    assert late not in {
        i.review_id
        for i in actions.pending(settings.effective_database_url, "it-review-1", limit=10_000)
    }
    assert actions.show(late, settings.effective_database_url).status == "expired"
    with pytest.raises(Exception, match="already expired"):
        actions.approve(late, "dave", settings.effective_database_url, settings.home_dir)
    assert Ledger(connect(settings.effective_database_url)).counts("it-review-1").get("sent") == 2


def test_audit_show_replay_and_export(
    settings: SluiceSettings,
    champion: VersionInfo,
    synth_dir: Path,
    features_dir: Path,
    sink: MailSink,
    tmp_path: Path,
) -> None:
    import pyarrow.parquet as pq
    import yaml
    from tests.integration.test_campaign import write_spec

    spec = write_spec(tmp_path / "a.yaml", synth_dir, features_dir, sink, "it-audit")
    f = run_campaign(spec, run_id="it-audit-1", dry_run=True, settings=settings).funnel
    assert f["would_send"] > 50

    # Replaying the run's own gates on its recorded inputs: nothing differs.
    same = sluice(settings.home_dir, "audit", "replay", "--run", "it-audit-1")
    assert same["checked"] > f["would_send"] and same["differing"] == 0

    # A stricter subject limit: every email that went through now fails channel format.
    changed = yaml.safe_load(spec.read_text())
    changed["gates"]["channel_format"] = {"subject_max": 12}
    (tmp_path / "strict.yaml").write_text(yaml.safe_dump(changed))
    strict = sluice(
        settings.home_dir,
        "audit",
        "replay",
        "--run",
        "it-audit-1",
        "--spec",
        str(tmp_path / "strict.yaml"),
    )
    engine = connect(settings.effective_database_url)
    with engine.connect() as conn:
        from sqlalchemy import select

        from sluice.store.schema import audit

        # every email that reached the channel-format gate, whatever happened after it
        gated = conn.execute(
            select(audit.c.verdicts).where(
                audit.c.run_id == "it-audit-1",
                audit.c.channel == "email",
                audit.c.verdicts.is_not(None),
            )
        ).scalars()
        emails_through = sum(
            any(v["gate"] == "channel_format" for v in json.loads(text)) for text in gated
        )
        one = conn.execute(
            select(audit.c.customer_id).where(
                audit.c.run_id == "it-audit-1", audit.c.outcome == "would_send"
            )
        ).scalar()
    assert emails_through and strict["differing"] == emails_through
    assert strict["by_gate"] == {"channel_format": emails_through}

    # One decision in plain words.
    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "sluice",
            "audit",
            "show",
            "--run",
            "it-audit-1",
            "--customer",
            str(one),
        ],
        capture_output=True,
        text=True,
        env=cli_env(settings.home_dir),
        timeout=300,
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "Gate claims: pass, ok." in shown.stdout and "would have been sent" in shown.stdout

    # Export: one Parquet row per candidate, drafts inlined.
    out = tmp_path / "audit.parquet"
    exported = sluice(
        settings.home_dir, "audit", "export", "--run", "it-audit-1", "--out", str(out)
    )
    table = pq.read_table(out)
    assert exported["rows"] == table.num_rows == f["scored"]
    assert {"verdicts", "draft", "feature_hash", "model_version", "prompt_hash"} <= set(
        table.column_names
    )
