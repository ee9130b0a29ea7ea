"""The demo's journey: cart abandonment, run by the orchestrator on a compressed clock.

A few thousand customers of the demo base who got no campaign message today abandon a
cart; a quarter buy that cart at once (they exit before any send), and some open the
reminder email. The events go into the Redis stream (or, where no Redis answers,
through the same ingest the API uses); the orchestrator runs ``jobs/cart-abandonment.yaml``
with every duration shrunk (a day lasts a few seconds), sends the email to a local mail
sink and the text to the outbox, and the summary shows the journey's funnel.
"""

from __future__ import annotations

import hashlib
import random
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml

from sluice.channels.unsubscribe import secret
from sluice.contracts.journey import parse_duration
from sluice.devtools.mailsink import MailSink
from sluice.feedback.ingest import ingest
from sluice.journeys.engine import EngineConfig
from sluice.journeys.funnel import funnel
from sluice.journeys.spec import load_journey
from sluice.orchestrator.loop import Orchestrator, OrchestratorConfig
from sluice.settings import SluiceSettings
from sluice.store.db import connect
from sluice.store.events import EventStore
from sluice.store.journey_reads import JourneyReads
from sluice.store.journeys import Inbox, Journeys
from sluice.store.ledger_reads import LedgerReads


@dataclass(frozen=True)
class JourneyDemo:
    spec: Path = Path("jobs/cart-abandonment.yaml")
    customers: int = 3_000
    day_s: float = 12.0
    """How long a journey day lasts in the demo."""
    buy_share: float = 0.25
    open_share: float = 0.35
    deadline_s: float = 120.0
    seed: int = 7


def scaled(data: dict[str, Any], day_s: float) -> dict[str, Any]:
    """A spec whose durations are shrunk so that a day lasts ``day_s`` seconds."""
    factor = day_s / 86_400

    def shrink(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                if k in ("for", "timeout", "after") and isinstance(v, str | int | float):
                    seconds = parse_duration(v).total_seconds() * factor
                    out[k] = f"{max(seconds, 0.05):.3f}s"
                else:
                    out[k] = shrink(v)
            return out
        if isinstance(node, list):
            return [shrink(v) for v in node]
        return node

    return dict(shrink(data))


def _audience(settings: SluiceSettings, customers: Path, n: int, seed: int) -> list[str]:
    """Customers with email consent and no message booked today (the cap is shared)."""
    table = pq.read_table(customers, columns=["customer_id", "email", "consent_email"])
    rows = [
        str(r["customer_id"])
        for r in table.to_pylist()
        if r["email"] and r["consent_email"] is True
    ]
    random.Random(seed).shuffle(rows)
    pool = rows[: n * 4]
    booked = LedgerReads(connect(settings.effective_database_url)).messaged(pool)
    return [c for c in pool if c not in booked][:n]


LOCAL_REDIS = "redis://127.0.0.1:6379/0"
"""Tried when ``SLUICE_REDIS_URL`` is unset: a Redis on this machine carries the events."""


def demo_stream(settings: SluiceSettings) -> str:
    """The demo's own stream, one per Sluice home: a configured production stream is
    never written to, and demos of other homes never read each other's events."""
    digest = hashlib.sha256(str(settings.home_dir.resolve()).encode()).hexdigest()[:12]
    return f"sluice:demo:{digest}"


def stream_url(settings: SluiceSettings) -> str | None:
    """The Redis the demo's events go through, if one answers."""
    import redis

    url = settings.redis_url or LOCAL_REDIS
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        return None
    return url


def _publisher(settings: SluiceSettings, url: str | None) -> Callable[[list[dict[str, Any]]], str]:
    """Events into the Redis stream when one answers, else through the API's ingest."""
    if url is not None:
        import redis

        from sluice.feedback.stream import publish

        client = redis.Redis.from_url(url, decode_responses=True)

        def to_stream(events: list[dict[str, Any]]) -> str:
            publish(client, demo_stream(settings), events)
            return "Redis stream"

        return to_stream
    engine = connect(settings.effective_database_url)
    keys = secret(settings.home_dir)

    def to_ingest(events: list[dict[str, Any]]) -> str:
        ingest(engine, events, "demo", keys, clock=settings.clock)
        return "API's ingest (no Redis answered)"

    return to_ingest


def run_journey_demo(
    demo: JourneyDemo, settings: SluiceSettings, work: Path, step: Callable[[str], None]
) -> dict[str, Any]:
    data = yaml.safe_load(demo.spec.read_text())
    data = scaled(data, demo.day_s)
    customers = work / "data" / "customers.parquet"
    data["customers"] = str(customers)
    # A compressed journey's days fall on one calendar day: the cap allows both messages.
    data.setdefault("gates", {})["frequency_cap"] = {"per_day": 2}
    sink = MailSink(work / "journey-mail").start()
    data["channels"]["email"].update(host="127.0.0.1", port=sink.smtp_port)
    path = work / "cart-abandonment.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    spec = load_journey(path, settings.home_dir)
    engine = connect(settings.effective_database_url)
    Journeys(engine, settings.clock).deploy(spec.journey_id, spec.public(), "demo")
    ids = _audience(settings, customers, demo.customers, demo.seed)
    rng = random.Random(demo.seed)
    buyers = {c for c in ids if rng.random() < demo.buy_share}
    openers = {c for c in ids if c not in buyers and rng.random() < demo.open_share}
    url = stream_url(settings)
    publish = _publisher(settings, url)
    run = secrets.token_hex(4)
    orchestrator = Orchestrator(
        OrchestratorConfig(
            EngineConfig(settings.effective_database_url, settings.home_dir, batch=200),
            redis_url=url,
            stream=demo_stream(settings),
            poll_s=0.05,
            reload_s=0.5,
        ),
        secret(settings.home_dir),
        settings.clock,
    )
    stop = threading.Event()
    worker = threading.Thread(target=orchestrator.run, args=(stop,), daemon=True)
    worker.start()
    started = time.monotonic()
    try:
        now = settings.clock.now()
        events: list[dict[str, Any]] = []
        for c in ids:  # a buyer's order follows the abandoned cart at once
            cart = f"cart-{run}-{c}"
            events.append(
                {
                    "event_id": f"demo-{run}-cart-{c}",
                    "type": "cart_abandoned",
                    "customer_id": c,
                    "occurred_at": now.isoformat(),
                    "properties": {"cart_id": cart, "value": round(rng.uniform(25, 240), 2)},
                }
            )
            if c in buyers:
                events.append(
                    {
                        "event_id": f"demo-{run}-buy-{c}",
                        "type": "purchase",
                        "customer_id": c,
                        "occurred_at": now.isoformat(),
                        "properties": {"cart_id": cart},
                    }
                )
        stored = EventStore(engine, settings.clock)
        before = stored.count()
        how = publish(events)
        step(
            f"Journey {spec.journey_id}: {len(ids):,} carts abandoned, {len(buyers):,} "
            f"bought at once (events through the {how}); the orchestrator runs it, "
            f"a day lasting {demo.day_s:g} s"
        )
        # Openers open the reminder after it went out: a little after the grace period.
        time.sleep(max(0.0, demo.day_s / 24 * 2))
        opens = [
            {
                "event_id": f"demo-{run}-open-{c}",
                "type": "open",
                "customer_id": c,
                "occurred_at": settings.clock.now().isoformat(),
            }
            for c in sorted(openers)
        ]
        publish(opens)
        published = len(events) + len(opens)
        inbox = Inbox(engine)
        while time.monotonic() - started < demo.deadline_s:  # every event applied
            if stored.count() >= before + published and inbox.size() == 0:
                break
            time.sleep(0.2)
        instances = JourneyReads(engine)
        # Until every instance is done, or waits past the demo (quiet hours deferred its
        # email to the recipient's morning, and its clock moved with it).
        horizon = timedelta(seconds=4 * demo.day_s)
        while time.monotonic() - started < demo.deadline_s:
            soonest = instances.soonest(spec.journey_id)
            if soonest is None or soonest > settings.clock.now() + horizon:
                break
            time.sleep(0.5)
    finally:
        stop.set()
        worker.join(timeout=30)
        orchestrator.close()
        sink.stop()
    figures = funnel(engine, spec, settings.clock.now() + timedelta(seconds=1))
    return {
        "journey": figures,
        "journey_emails_received": len(sink.store.attempts),
        "journey_s": round(time.monotonic() - started, 1),
    }
