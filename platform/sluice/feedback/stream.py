"""Customer events from a Redis stream, read by the orchestrator through a consumer group.

An entry carries one event as a JSON object in its field ``event`` (what :func:`publish`
writes). :meth:`StreamConsumer.poll` passes a batch of events to ``ingest`` in one call and
acknowledges (``XACK``) the entries only after ``ingest`` has returned (committed them).

Delivery is **at least once**: if ``ingest`` raises or the process dies before the
``XACK``, the entries stay pending; a later poll, by this consumer or another, takes them
over with ``XAUTOCLAIM`` once idle ``claim_idle_ms`` and passes them to ``ingest`` again.
An event may arrive twice: duplicates are removed by ``event_id`` where events are stored.

Unusable entries are *parked*, not retried: no ``event`` field, a field that is not UTF-8
or JSON, JSON that is not an object, and every event ``ingest`` rejects. Parking adds an
entry to ``{stream}:parked`` with ``id`` (the original entry id), ``reason`` (the problem,
in words) and ``entry`` (the original fields as JSON, cut to 10,000 characters), capped
near ``parked_maxlen``, and acknowledges the original in the same ``MULTI``/``EXEC``.

Create the client with ``decode_responses=True``; one that returns bytes works as well.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import redis

from sluice.contracts.feedback import EventReject

EVENT_FIELD = "event"
ENTRY_CHARS = 10_000  # the most characters of the original fields a parked entry keeps

Ingest = Callable[[list[dict[str, Any]]], Sequence[EventReject]]
"""Validates and stores events (deduplicating by ``event_id``); returns the rejects."""
_Entry = tuple[str, dict[str, str | bytes]]
_JSON_KINDS = {list: "an array", str: "a string", bool: "a boolean", int: "a number"}


@dataclass(frozen=True)
class PollResult:
    read: int
    """Entries taken in this poll (the reclaimed ones included)."""
    ingested: int
    """Events that ``ingest`` took without rejecting them (duplicates included)."""
    parked: int
    """Entries parked: malformed ones and rejected events."""
    reclaimed: int
    """Entries taken over from pending (a crashed consumer, a failed ``ingest``)."""


class StreamConsumer:
    """One member of a consumer group on ``stream``; call :meth:`ensure_group` first."""

    def __init__(
        self,
        client: redis.Redis,
        stream: str,
        *,
        ingest: Ingest,
        group: str = "sluice-orchestrator",
        consumer: str | None = None,  # None: f"{hostname}-{pid}"
        claim_idle_ms: int = 30_000,
        parked_maxlen: int = 100_000,
    ) -> None:
        self.client = client
        self.stream = stream
        self.parked_stream = f"{stream}:parked"
        self.group = group
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.ingest = ingest
        self.claim_idle_ms = claim_idle_ms
        self.parked_maxlen = parked_maxlen

    def ensure_group(self) -> None:
        """Create the group (reading from the stream's start) and the stream if missing."""
        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if not str(exc).startswith("BUSYGROUP"):
                raise

    def poll(self, count: int = 1000, block_ms: int = 0) -> PollResult:
        """Take up to ``count`` entries, reclaimed ones first, and ingest them.

        ``block_ms`` > 0 waits that long for new entries when none was reclaimed; 0 returns
        at once. If ``ingest`` raises, the batch's events stay pending and it propagates.
        """
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        # redis-py types replies as "Awaitable | Any" (sync and async clients share them)
        claimed: Any = self.client.xautoclaim(
            self.stream, self.group, self.consumer, self.claim_idle_ms, "0-0", count=count
        )
        entries = _entries(claimed[1])
        reclaimed = len(entries)
        if reclaimed < count:
            block = block_ms if block_ms > 0 and not entries else None
            response: Any = self.client.xreadgroup(
                self.group, self.consumer, {self.stream: ">"}, count=count - reclaimed, block=block
            )
            streams = response.values() if isinstance(response, dict) else (r[1] for r in response)
            for found in streams:  # RESP3 replies may wrap a stream's entry list once more
                entries += _entries(found[0] if found and isinstance(found[0], list) else found)
        decoded = [(entry, _decode(entry[1])) for entry in entries]
        malformed = [(entry, why) for entry, why in decoded if isinstance(why, str)]
        sources = [entry for entry, event in decoded if not isinstance(event, str)]
        events = [event for _, event in decoded if not isinstance(event, str)]
        if malformed:
            self._park_and_ack(malformed, [])
        reasons: dict[int, list[str]] = {}
        for reject in self.ingest(events) if events else ():
            if not 0 <= reject.index < len(sources):
                raise IndexError(f"ingest rejected index {reject.index} of {len(sources)} events")
            reasons.setdefault(reject.index, []).append(f"{reject.field}: {reject.reason}")
        rejected = [(sources[i], "; ".join(r)) for i, r in sorted(reasons.items())]
        if sources:
            self._park_and_ack(rejected, [entry_id for entry_id, _ in sources])
        return PollResult(
            read=len(entries),
            ingested=len(events) - len(rejected),
            parked=len(malformed) + len(rejected),
            reclaimed=reclaimed,
        )

    def _park_and_ack(self, parked: list[tuple[_Entry, str]], acked: list[str]) -> None:
        """Park ``parked`` and acknowledge them and ``acked``, in one transaction."""
        pipe = self.client.pipeline(transaction=True)
        for (entry_id, fields), reason in parked:
            shown = json.dumps({k: _text(v) for k, v in fields.items()}, ensure_ascii=False)
            pipe.xadd(
                self.parked_stream,
                {"id": entry_id, "reason": reason, "entry": shown[:ENTRY_CHARS]},
                maxlen=self.parked_maxlen,
                approximate=True,
            )
        pipe.xack(self.stream, self.group, *acked, *(entry_id for (entry_id, _), _ in parked))
        pipe.execute()


def publish(
    client: redis.Redis,
    stream: str,
    events: Sequence[Mapping[str, Any]],
    maxlen: int | None = None,
) -> list[str]:
    """Append one entry per event (JSON in the field ``event``, dates as ISO strings), all
    or none in one transaction; returns the entry ids. ``maxlen`` caps the stream near it."""
    bodies = [json.dumps(dict(e), default=_json_default, allow_nan=False) for e in events]
    if not bodies:
        return []
    pipe = client.pipeline(transaction=True)
    for body in bodies:
        pipe.xadd(stream, {EVENT_FIELD: body}, maxlen=maxlen, approximate=True)
    return [_text(entry_id) for entry_id in pipe.execute()]


def _decode(fields: Mapping[str, str | bytes]) -> dict[str, Any] | str:
    """The entry's event, or why there is none."""
    raw = fields.get(EVENT_FIELD)
    if raw is None:
        return f"field event: missing (the entry's fields: {', '.join(sorted(fields)) or 'none'})"
    try:
        text = raw if isinstance(raw, str) else raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"field event: not valid UTF-8 ({exc.reason} at byte {exc.start})"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"field event: not valid JSON ({exc.msg}: line {exc.lineno} column {exc.colno})"
    except (ValueError, RecursionError) as exc:  # e.g. nested too deeply, a huge integer
        return f"field event: not valid JSON ({type(exc).__name__}: {exc})"
    if not isinstance(value, dict):
        kind = "null" if value is None else _JSON_KINDS.get(type(value), "a number")
        return f"field event: the JSON is {kind}, not an object"
    return value


def _entries(raw: Any) -> list[_Entry]:
    """``(id, fields)`` pairs of a parsed stream reply, ids and field names as ``str``."""
    out: list[_Entry] = []
    for entry_id, fields in raw or ():
        if entry_id is not None:  # None: deleted from the stream while pending
            items = (fields or {}).items()
            out.append((_text(entry_id), {_text(k): v for k, v in items}))  # v: str | bytes
    return out


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _json_default(value: object) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"an event holds a {type(value).__name__}, which JSON cannot carry")
