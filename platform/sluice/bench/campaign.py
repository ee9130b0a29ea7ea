"""``sluice bench campaign``: a whole-customer-base campaign on this machine.

In one run: (a) a dry run of ``customers`` recipients (scoring, decisions, copy, every
gate, the audit trail; no ledger reservations, no delivery), against (b) the batch
scoring job alone on the same audience, the baseline that any campaign must pay; then
delivery into a local SMTP server: (c) a real run of ``smtp_messages`` recipients, its
delivery time being its wall time less a dry run of the same recipients, against (d) a
bare ``smtplib`` loop sending as many messages over one connection to the same server.
Setup (synthetic base, features, a trained and promoted model) is not timed.
"""

from __future__ import annotations

import json
import shutil
import smtplib
import subprocess
import sys
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import yaml

from sluice.bench.batch import _prepare, scratch_env, scratch_settings
from sluice.features import write_synthetic_features


@dataclass(frozen=True)
class CampaignBench:
    customers: int
    dry_run_s: float
    recipients_per_s: float
    scoring_s: float
    ratio_vs_scoring: float
    """Dry-run recipients/s over scoring-job rows/s (1.0: the campaign costs no more)."""
    funnel: dict[str, Any]
    smtp_messages: int
    smtp_delivery_s: float
    smtp_msgs_per_s: float
    bare_smtp_msgs_per_s: float
    smtp_ratio: float


def _spec(work: Path, name: str, port: int, status_url: str, limit: int | None) -> Path:
    spec: dict[str, Any] = {
        "campaign_id": name,
        "name": name,
        "audience": {
            "features": str(work / "audience-big.parquet"),
            "customers": str(work / "big" / "customers.parquet"),
            **({"limit": limit} if limit else {}),
        },
        "channels": {
            "email": {
                "transport": "smtp",
                "port": port,
                "reconcile_url": status_url,
                "allow_hosts": ["127.0.0.1"],  # the local mail sink (egress guard)
                "concurrency": 8,
            },
            "sms": {"transport": "outbox", "path": str(work / "outbox")},
            "push": {"transport": "outbox", "path": str(work / "outbox")},
        },
        "gates": {"frequency_cap": None, "quiet_hours": None},
        "holdout_pct": 10,
        "batch_size": 10_000,
    }
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _sluice(args: list[str], env: dict[str, str]) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "sluice", *args], capture_output=True, text=True, env=env
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"sluice {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return seconds, json.loads(done.stdout.strip().splitlines()[-1])


def _bare_smtp(port: int, n: int) -> float:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "b@example.com", "r@example.com", "bench"
    msg.set_content("Trail boots, 20% off.\n" * 20)
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for i in range(n):
            del msg["Message-ID"]
            msg["Message-ID"] = f"<bare-{i}@bench.example>"
            smtp.send_message(msg)
    return n / (time.perf_counter() - started)


def run_campaign_bench(customers: int, smtp_messages: int, work: Path) -> CampaignBench:
    from sluice.data import SynthCalendar, SynthConfig, synthesize
    from sluice.devtools.mailsink import MailSink

    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    settings = scratch_settings(work / "home")
    env = scratch_env(settings)
    env.pop("RAY_ADDRESS", None)
    _prepare(work, settings)
    cal = SynthCalendar.today(settings.clock)
    synthesize(SynthConfig(customers=customers, seed=33, end=cal.history_end), work / "big")
    write_synthetic_features(work / "big", cal.score_cutoff, work / "audience-big.parquet")

    sink = MailSink(work / "mail").start()
    try:
        dry_spec = _spec(work, "bench-dry", sink.smtp_port, sink.status_url, None)
        dry_s, dry = _sluice(["campaign", "run", str(dry_spec), "--dry-run", "--no-progress"], env)
        scoring_s, _ = _sluice(
            [
                "score",
                "--audience",
                str(work / "audience-big.parquet"),
                "--out",
                str(work / "scores"),
                "--overwrite",
                "--no-progress",
            ],
            env,
        )
        small = _spec(work, "bench-send", sink.smtp_port, sink.status_url, smtp_messages)
        small_dry_s, _ = _sluice(["campaign", "run", str(small), "--dry-run", "--no-progress"], env)
        real_s, real = _sluice(["campaign", "run", str(small), "--no-progress"], env)
        emails = sum(1 for _ in (work / "mail").rglob("*.eml"))
        bare_rate = _bare_smtp(sink.smtp_port, max(emails, 1))
    finally:
        sink.stop()
    delivery_s = max(real_s - small_dry_s, 1e-3)
    sent_email = int(real.get("sent", 0)) - _outbox_lines(work / "outbox")
    rate = sent_email / delivery_s
    return CampaignBench(
        customers=customers,
        dry_run_s=round(dry_s, 1),
        recipients_per_s=round(customers / dry_s),
        scoring_s=round(scoring_s, 1),
        ratio_vs_scoring=round(scoring_s / dry_s, 3),
        funnel={k: dry.get(k) for k in ("scored", "selected", "rejected", "review", "deferred")},
        smtp_messages=sent_email,
        smtp_delivery_s=round(delivery_s, 1),
        smtp_msgs_per_s=round(rate, 1),
        bare_smtp_msgs_per_s=round(bare_rate, 1),
        smtp_ratio=round(rate / bare_rate, 3),
    )


def _outbox_lines(root: Path) -> int:
    return sum(len(p.read_text().splitlines()) for p in root.rglob("*.jsonl"))
