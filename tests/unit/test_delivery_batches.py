"""Batched sends: a transport that makes many messages durable at once (the file outbox)
gets a worker's batch in one call; when that call fails part way, each message is
reconciled on its own (written: sent, never twice; not written: sent alone), and a
channel that is down as a whole keeps every message reserved."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from tests.unit.test_delivery import book

from sluice.channels.base import ChannelDownError, OutboundMessage
from sluice.channels.outbox import OutboxTransport
from sluice.coordinator.delivery import Deliverer, DeliveryPolicy
from sluice.store import connect
from sluice.store.ledger import Ledger


class FailingPartWay(OutboxTransport):
    """The real outbox, whose first batched write stops after half its messages."""

    def __init__(self, directory: Path, run_id: str) -> None:
        super().__init__(directory, run_id, "email")
        self.batches: list[int] = []

    def send_many(self, messages: Sequence[OutboundMessage]) -> list[str]:
        self.batches.append(len(messages))
        if len(self.batches) == 1:
            super().send_many(messages[: len(messages) // 2])
            raise OSError("no space left on device")
        return super().send_many(messages)


class Unmounted(OutboxTransport):
    def send_many(self, messages: Sequence[OutboundMessage]) -> list[str]:
        raise ChannelDownError("the outbox volume is not mounted")


def _written(transport: OutboxTransport) -> Counter[str]:
    lines = transport.path.read_text(encoding="utf-8").splitlines()
    return Counter(json.loads(line)["idempotency_key"] for line in lines)


def test_a_batch_goes_in_one_call_and_one_failing_part_way_is_reconciled(
    database_url: str, tmp_path: Path
) -> None:
    ledger = Ledger(connect(database_url))
    keys = book(ledger, 40, run="run-b")
    outbox = FailingPartWay(tmp_path / "outbox", "run-b")
    deliverer = Deliverer(ledger, {"email": outbox}, {"email": 1}, DeliveryPolicy(durable_batch=20))
    out = deliverer.deliver(ledger.pending("run-b"))
    deliverer.close()
    assert out == {"sent": 40}
    # One call per batch; the ten messages the failed call did not write, sent alone.
    assert outbox.batches == [20] + [1] * 10 + [20]
    assert _written(outbox) == Counter(dict.fromkeys(keys, 1))  # each message once
    rows = {r.idempotency_key: r for r in ledger.rows("run-b")}
    assert {r.state for r in rows.values()} == {"sent"}
    reconciled = sorted(
        k for k, r in rows.items() if (r.provider_message_id or "").startswith("reconciled:")
    )
    assert reconciled == sorted(keys[:10])  # the half written before the failure


def test_a_channel_down_keeps_the_whole_batch_reserved(database_url: str, tmp_path: Path) -> None:
    ledger = Ledger(connect(database_url))
    book(ledger, 12, run="run-u")
    deliverer = Deliverer(
        ledger,
        {"email": Unmounted(tmp_path / "outbox", "run-u", "email")},
        {"email": 1},
        DeliveryPolicy(durable_batch=12),
    )
    out = deliverer.deliver(ledger.pending("run-u"))
    deliverer.close()
    assert out == {"channel_down": 12}
    assert "not mounted" in deliverer.down["email"]
    assert ledger.counts("run-u") == {"reserved": 12}
    assert all(r.attempt_started_at is None for r in ledger.rows("run-u"))
