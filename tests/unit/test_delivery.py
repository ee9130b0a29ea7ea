"""The deliverer against a real SMTP server: leases, isolation and the circuit breaker."""

from __future__ import annotations

import threading
import time
from datetime import date
from pathlib import Path

from sluice.channels.smtp import SmtpTransport
from sluice.coordinator.delivery import Deliverer
from sluice.devtools.mailsink import MailSink
from sluice.store import connect
from sluice.store.ledger import Ledger, Reservation


def book(ledger: Ledger, n: int, run: str = "run-d") -> list[str]:
    keys = [f"{run}-k{i:03d}" for i in range(n)]
    ledger.reserve(
        [
            Reservation(
                key,
                run,
                "camp",
                f"c{i}",
                "email",
                "smtp",
                f"dec_{i}",
                "offer-1",
                "main",
                date(2026, 7, 1),
                {
                    "channel": "email",
                    "address": f"c{i}@example.com",
                    "run_id": run,
                    "campaign_id": "camp",
                    "customer_id": f"c{i}",
                    "subject": "Hello",
                    "body": "Body",
                    "cta": "Go",
                },
            )
            for i, key in enumerate(keys)
        ],
        cap=None,
    )
    return keys


def smtp(
    sink: MailSink, username: str | None = None, password: str | None = None, reconcile: bool = True
) -> SmtpTransport:
    return SmtpTransport(
        "127.0.0.1",
        sink.smtp_port,
        "offers@shop.example.com",
        "Shop",
        "https://shop.example.com/u",
        username=username,
        password=password,
        reconcile_url=sink.status_url if reconcile else None,
        timeout_s=5,
        allow_hosts=("127.0.0.1",),  # the loopback mail sink
    )


def test_two_deliverers_on_the_same_rows_send_each_message_once(
    database_url: str, tmp_path: Path
) -> None:
    """The second deliverer finds rows the first is still sending (the relay holds its
    reply) and cannot ask the relay about them: a live lease is someone's send, so it
    leaves them alone rather than reconcile, fail or resend them."""
    sink = MailSink(tmp_path / "mail", reply_delay_s=0.4).start()
    try:
        ledger = Ledger(connect(database_url))
        book(ledger, 6)
        first = Deliverer(ledger, {"email": smtp(sink)}, {"email": 3})
        second = Deliverer(ledger, {"email": smtp(sink, reconcile=False)}, {"email": 3})
        rows = ledger.pending("run-d")
        results: list[object] = []
        t = threading.Thread(target=lambda: results.append(first.deliver(rows)))
        t.start()
        time.sleep(0.2)  # the first three are on the wire, waiting for the relay's reply
        again = second.deliver(ledger.pending("run-d"))
        t.join()
        first.close()
        second.close()
        assert sum(sink.store.attempts.values()) == 6
        assert all(n == 1 for n in sink.store.attempts.values())
        assert ledger.counts("run-d") == {"sent": 6}
        assert again["busy"] >= 1 and again.get("failed", 0) == 0
    finally:
        sink.stop()


def test_a_refused_login_opens_the_breaker_and_keeps_the_messages(
    database_url: str, tmp_path: Path
) -> None:
    sink = MailSink(tmp_path / "mail", credentials=("sluice", "right")).start()
    try:
        ledger = Ledger(connect(database_url))
        keys = book(ledger, 5, run="run-b")
        deliverer = Deliverer(
            ledger, {"email": smtp(sink, username="sluice", password="wrong")}, {"email": 1}
        )
        out = deliverer.deliver(ledger.pending("run-b"))
        deliverer.close()
        assert out == {"channel_down": 5}
        assert "refused authentication" in deliverer.down["email"]
        # Nothing was lost: every message is still reserved, unstamped, for a resume.
        pending = ledger.pending("run-b")
        assert [r.idempotency_key for r in pending] == keys
        assert all(r.attempt_started_at is None for r in pending)
        assert not sink.store.attempts
        # With the right password a resume delivers them, once each.
        fixed = Deliverer(
            ledger, {"email": smtp(sink, username="sluice", password="right")}, {"email": 2}
        )
        assert fixed.deliver(ledger.pending("run-b")) == {"sent": 5}
        fixed.close()
        assert len(sink.store.attempts) == 5
    finally:
        sink.stop()


def test_the_send_time_recheck_defers_expires_and_moves_the_cap_day(
    database_url: str, tmp_path: Path
) -> None:
    """Booked at noon on 1 July; delivered by a resume later: what changed since is
    checked in the recipient's zone when the row is about to be claimed."""
    from dataclasses import replace
    from datetime import UTC, datetime, time

    from sluice.channels.outbox import OutboxTransport
    from sluice.contracts.clock import Clock
    from sluice.coordinator.sendtime import SendRules

    engine = connect(database_url)
    day = date(2026, 7, 1)

    def row(key: str, customer: str, zone: str, offer: str, on: date = day) -> Reservation:
        return Reservation(
            key, "run-s", "camp", customer, "sms", "outbox", None, offer, "main", on,
            {"channel": "sms", "address": "+15550000000", "run_id": "run-s",
             "campaign_id": "camp", "customer_id": customer, "text": "Hi"},
            None, zone,
        )  # fmt: skip

    Ledger(engine, Clock.at(datetime(2026, 7, 1, 12, tzinfo=UTC))).reserve(
        [
            row("s-berlin", "c1", "Europe/Berlin", "boots"),
            row("s-jacket", "c2", "America/New_York", "jacket"),
            row("s-late", "c3", "America/New_York", "boots"),
        ],
        cap=1,
    )
    # c3 already has a message on 2 July (another campaign): that day is full for it.
    other = row("other", "c3", "America/New_York", "boots", date(2026, 7, 2))
    Ledger(engine).reserve([replace(other, run_id="run-o")], cap=1)
    rules = SendRules(
        quiet=(time(21), time(8)),
        cap=1,
        offer_ends={"boots": date(2026, 9, 30), "jacket": date(2026, 7, 1)},
    )

    def deliver_at(when: datetime) -> dict[str, int]:
        ledger = Ledger(engine, Clock.at(when))
        d = Deliverer(
            ledger, {"sms": OutboxTransport(tmp_path, "run-s", "sms")}, {"sms": 1}, rules=rules
        )
        out = dict(d.deliver(ledger.pending("run-s")))
        d.close()
        return out

    # 2 July, 02:00 UTC: 04:00 in Berlin (quiet), 22:00 on 1 July in New York (quiet).
    # The jacket ended on 1 July... not yet in New York, so it is deferred, not expired.
    # c3's deferral would go out on 2 July, which is full for c3: it fails on the cap.
    assert deliver_at(datetime(2026, 7, 2, 2, tzinfo=UTC)) == {"deferred": 2, "capped": 1}
    ledger = Ledger(engine)
    assert ledger.contacts("c1") == {day: 0, date(2026, 7, 2): 1}  # the count moved too
    assert ledger.contacts("c3") == {day: 0, date(2026, 7, 2): 1}  # only the other's
    # 2 July, 14:00 UTC: both deferrals are due. Berlin is sent; the jacket has ended in
    # New York, so it expires unsent and no longer counts.
    later = Ledger(engine, Clock.at(datetime(2026, 7, 2, 14, tzinfo=UTC)))
    assert later.promote_due("run-s") == 2
    assert deliver_at(datetime(2026, 7, 2, 14, tzinfo=UTC)) == {"sent": 1, "expired": 1}
    states = {r.idempotency_key: r.state for r in ledger.rows("run-s")}
    assert states == {"s-berlin": "sent", "s-jacket": "expired", "s-late": "failed"}
    assert ledger.contacts("c2") == {day: 0, date(2026, 7, 2): 0}


def test_batches_send_each_message_once_and_a_crash_before_settling_is_reconciled(
    database_url: str, tmp_path: Path
) -> None:
    """Workers claim, send and settle rows in batches. A worker that died after sending
    a batch but before settling it left rows stamped under its lease: once that lease is
    over they are reconciled with the relay (delivered: sent), never sent again; a
    recipient suppressed after booking is withdrawn, not sent."""
    from datetime import UTC, datetime, timedelta

    from sluice.channels.base import OutboundMessage
    from sluice.contracts.clock import Clock
    from sluice.coordinator.delivery import DeliveryPolicy
    from sluice.store.suppressions import Suppressions

    sink = MailSink(tmp_path / "mail").start()
    try:
        engine = connect(database_url)
        t0 = datetime.now(UTC)
        ledger = Ledger(engine, Clock.at(t0))
        keys = book(ledger, 150)
        # A worker claims the first 40 as one batch, sends them and dies unsettled.
        dead = ledger.claim_many(keys[:40], "dead-worker", timedelta(seconds=30), "outdoors")
        assert dead == set(keys[:40])
        relay = smtp(sink)
        for row in ledger.pending("run-d", keys[:40]):
            relay.send(OutboundMessage.from_payload(row.idempotency_key, row.payload))
        relay.close()
        Suppressions(engine).add("c77", "unsubscribed", brand="outdoors")

        later = Ledger(engine, Clock.at(t0 + timedelta(minutes=5)))
        live = Deliverer(
            later, {"email": smtp(sink)}, {"email": 3}, DeliveryPolicy(batch=16), brand="outdoors"
        )
        out = live.drain(lambda: later.pending("run-d"))
        live.close()
        assert out == {"sent": 149, "suppressed": 1}
        assert sum(sink.store.attempts.values()) == 149
        assert all(n == 1 for n in sink.store.attempts.values())
        assert later.counts("run-d") == {"sent": 149, "suppressed": 1}
        reconciled = [r for r in later.rows("run-d") if r.idempotency_key in dead]
        assert all((r.provider_message_id or "").startswith("reconciled:") for r in reconciled)
    finally:
        sink.stop()
