"""The Redis Streams consumer of customer events, against a real Redis server.

Skipped where no Redis is reachable, except under ``CI=true``, where that is a failure.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
import redis

from sluice.contracts.feedback import EventReject
from sluice.feedback.stream import StreamConsumer, publish

REDIS_URL = os.environ.get("SLUICE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TYPES = {"delivered", "open", "click", "conversion"}


def _connect(decode: bool) -> redis.Redis:
    return redis.Redis.from_url(REDIS_URL, decode_responses=decode, socket_connect_timeout=3)


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    c = _connect(decode=True)
    try:
        c.ping()
    except redis.ConnectionError as exc:
        if os.environ.get("CI") == "true":  # CI has the server: its absence is a failure
            pytest.fail(f"Redis not reachable at {REDIS_URL} under CI: {exc}")
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
    yield c
    c.close()


@pytest.fixture
def stream(client: redis.Redis) -> Iterator[str]:
    name = f"sluice-test:events:{uuid.uuid4().hex}"
    yield name
    client.delete(name, f"{name}:parked")


class FakeStore:
    """A stand-in for the real ingest: validates ``type``, keeps events by ``event_id``."""

    def __init__(self, fail: bool = False) -> None:
        self.by_id: dict[str, dict[str, Any]] = {}
        self.batches: list[list[dict[str, Any]]] = []
        self.fail = fail

    def __call__(self, events: list[dict[str, Any]]) -> Sequence[EventReject]:
        self.batches.append(list(events))
        if self.fail:
            raise RuntimeError("database unavailable")
        rejects = []
        for i, e in enumerate(events):
            if e.get("type") not in TYPES:
                rejects.append(EventReject(index=i, field="type", reason="unknown event type"))
            else:
                self.by_id.setdefault(str(e["event_id"]), e)
        return rejects


def _event(n: int, **extra: Any) -> dict[str, Any]:
    return {"event_id": f"e{n}", "type": "open", "customer_id": f"c{n}", **extra}


def _consumer(client: redis.Redis, stream: str, store: FakeStore, **kwargs: Any) -> StreamConsumer:
    consumer = StreamConsumer(client, stream, ingest=store, consumer="worker-a", **kwargs)
    consumer.ensure_group()
    return consumer


def _pending(client: redis.Redis, stream: str) -> int:
    return int(client.xpending(stream, "sluice-orchestrator")["pending"])


def _parked(client: redis.Redis, stream: str) -> list[dict[str, str]]:
    entries = client.xrange(f"{stream}:parked") or []
    return [{str(k): str(v) for k, v in (fields or {}).items()} for _, fields in entries]


def test_publish_then_poll_ingests_in_order_and_acks(client: redis.Redis, stream: str) -> None:
    store = FakeStore()
    consumer = _consumer(client, stream, store)
    at = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    ids = publish(client, stream, [_event(n, occurred_at=at) for n in range(5)])

    assert len(ids) == 5
    assert (client.xrange(stream) or [])[0][1] == {
        "event": json.dumps(_event(0, occurred_at=at.isoformat()))
    }
    result = consumer.poll(count=100)

    assert (result.read, result.ingested, result.parked, result.reclaimed) == (5, 5, 0, 0)
    assert len(store.batches) == 1  # one ingest call for the batch
    assert [e["event_id"] for e in store.batches[0]] == [f"e{n}" for n in range(5)]
    assert store.batches[0][0]["occurred_at"] == "2026-03-01T12:30:00+00:00"
    assert _pending(client, stream) == 0
    assert _parked(client, stream) == []
    assert consumer.poll() == type(result)(read=0, ingested=0, parked=0, reclaimed=0)
    assert len(store.batches) == 1  # an empty poll does not call ingest


def test_count_limits_the_batch(client: redis.Redis, stream: str) -> None:
    store = FakeStore()
    consumer = _consumer(client, stream, store)
    publish(client, stream, [_event(n) for n in range(5)])

    assert consumer.poll(count=2).read == 2
    assert consumer.poll(count=10).read == 3
    assert [[e["event_id"] for e in b] for b in store.batches] == [
        ["e0", "e1"],
        ["e2", "e3", "e4"],
    ]


def test_ensure_group_is_idempotent_and_reads_from_the_start(
    client: redis.Redis, stream: str
) -> None:
    publish(client, stream, [_event(1)])  # before the group exists
    store = FakeStore()
    consumer = _consumer(client, stream, store)
    consumer.ensure_group()  # BUSYGROUP is ignored

    assert consumer.poll().ingested == 1
    assert list(store.by_id) == ["e1"]


def test_malformed_entries_are_parked_and_the_rest_ingested(
    client: redis.Redis, stream: str
) -> None:
    store = FakeStore()
    consumer = _consumer(client, stream, store)
    good_1 = publish(client, stream, [_event(1)])[0]
    no_field = client.xadd(stream, {"payload": "{}"})
    bad_json = client.xadd(stream, {"event": "{not json"})
    a_list = client.xadd(stream, {"event": "[1, 2]"})
    empty = client.xadd(stream, {"event": ""})
    good_2 = publish(client, stream, [_event(2)])[0]

    result = consumer.poll()

    assert (result.read, result.ingested, result.parked) == (6, 2, 4)
    assert [e["event_id"] for e in store.batches[0]] == ["e1", "e2"]
    parked = _parked(client, stream)
    assert [p["id"] for p in parked] == [no_field, bad_json, a_list, empty]
    assert parked[0]["reason"] == "field event: missing (the entry's fields: payload)"
    assert parked[1]["reason"] == (
        "field event: not valid JSON (Expecting property name enclosed in double quotes: "
        "line 1 column 2)"
    )
    assert parked[2]["reason"] == "field event: the JSON is an array, not an object"
    assert parked[3]["reason"] == "field event: not valid JSON (Expecting value: line 1 column 1)"
    assert json.loads(parked[0]["entry"]) == {"payload": "{}"}
    assert json.loads(parked[2]["entry"]) == {"event": "[1, 2]"}
    assert _pending(client, stream) == 0
    assert good_1 < good_2


def test_parked_entry_is_truncated(client: redis.Redis, stream: str) -> None:
    consumer = _consumer(client, stream, FakeStore())
    client.xadd(stream, {"event": "x" * 50_000})

    assert consumer.poll().parked == 1
    (parked,) = _parked(client, stream)
    assert len(parked["entry"]) == 10_000
    assert parked["entry"].startswith('{"event": "xxx')


def test_rejected_events_are_parked_with_field_and_reason(client: redis.Redis, stream: str) -> None:
    store = FakeStore()
    consumer = _consumer(client, stream, store)
    ids = publish(client, stream, [_event(1), _event(2, type="teleport"), _event(3)])

    result = consumer.poll()

    assert (result.read, result.ingested, result.parked) == (3, 2, 1)
    assert sorted(store.by_id) == ["e1", "e3"]
    (parked,) = _parked(client, stream)
    assert parked["id"] == ids[1]
    assert parked["reason"] == "type: unknown event type"
    assert json.loads(json.loads(parked["entry"])["event"]) == _event(2, type="teleport")
    assert _pending(client, stream) == 0


def test_failed_ingest_leaves_entries_pending_for_another_consumer(
    client: redis.Redis, stream: str
) -> None:
    broken = FakeStore(fail=True)
    first = _consumer(client, stream, broken)
    ids = publish(client, stream, [_event(1), _event(2)])
    client.xadd(stream, {"event": "null"})

    with pytest.raises(RuntimeError, match="database unavailable"):
        first.poll()

    assert len(broken.batches) == 1
    assert _pending(client, stream) == 2  # the malformed entry was parked and acked
    detail = client.xpending_range(stream, "sluice-orchestrator", "-", "+", 10)
    assert [(d["message_id"], d["consumer"]) for d in detail] == [
        (ids[0], "worker-a"),
        (ids[1], "worker-a"),
    ]
    (parked,) = _parked(client, stream)
    assert parked["reason"] == "field event: the JSON is null, not an object"

    # A consumer with the default idle time leaves another's fresh entries alone.
    patient = StreamConsumer(client, stream, ingest=FakeStore(), consumer="worker-p")
    assert patient.poll().read == 0

    store = FakeStore()
    second = StreamConsumer(client, stream, ingest=store, consumer="worker-b", claim_idle_ms=0)
    result = second.poll()

    assert (result.read, result.ingested, result.parked, result.reclaimed) == (2, 2, 0, 2)
    assert [e["event_id"] for e in store.batches[0]] == ["e1", "e2"]
    assert _pending(client, stream) == 0
    assert len(_parked(client, stream)) == 1  # not parked a second time


def test_duplicate_deliveries_are_passed_to_ingest(client: redis.Redis, stream: str) -> None:
    store = FakeStore()
    consumer = _consumer(client, stream, store)
    publish(client, stream, [_event(1), _event(2), _event(1, type="click")])

    result = consumer.poll()

    assert result.ingested == 3
    assert [e["event_id"] for e in store.batches[0]] == ["e1", "e2", "e1"]
    assert sorted(store.by_id) == ["e1", "e2"]
    assert store.by_id["e1"]["type"] == "open"  # the first one stored wins


def test_bytes_client_works_and_parks_invalid_utf8(stream: str, client: redis.Redis) -> None:
    raw = _connect(decode=False)
    store = FakeStore()
    consumer = _consumer(raw, stream, store)
    ids = publish(raw, stream, [_event(1, note="héllo")])
    bad_id = raw.xadd(stream, {"event": b'{"event_id": "\xff"}'})
    bad = bad_id.decode() if isinstance(bad_id, bytes) else bad_id

    result = consumer.poll()
    raw.close()

    assert isinstance(ids[0], str)
    assert (result.ingested, result.parked) == (1, 1)
    assert store.by_id["e1"]["note"] == "héllo"
    (parked,) = _parked(client, stream)
    assert parked["id"] == bad
    assert parked["reason"] == "field event: not valid UTF-8 (invalid start byte at byte 14)"


def test_publish_refuses_values_json_cannot_carry(client: redis.Redis, stream: str) -> None:
    with pytest.raises(TypeError, match="set"):
        publish(client, stream, [_event(1), _event(2, tags={"a"})])
    with pytest.raises(ValueError, match="JSON compliant"):
        publish(client, stream, [_event(3, revenue=float("nan"))])
    assert client.xlen(stream) == 0  # all or nothing
    assert publish(client, stream, []) == []
