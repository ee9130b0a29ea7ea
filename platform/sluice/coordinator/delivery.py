"""Handing reserved messages to channel workers, and recording what happened.

Every attempt holds a lease on its ledger row (owner and expiry, see
:mod:`sluice.store.ledger`): a row is claimed, sent, and settled (sent, failed, or
released for another try) only by the worker that holds it, and a live lease is never
touched by anyone else. A row still stamped from an attempt whose lease ran out (its
worker died or hung) is taken over and reconciled with the provider first (delivered:
sent; not delivered: sent again under the same key; unknown: failed as ambiguous, for a
person to resolve). Transient errors are retried with backoff a bounded number of times.
A claim re-checks the suppression list and the campaign's paused arms in the same
statement, so an unsubscribe or a guardrail that lands after gating still stops the send;
just before that, the send-time re-check (:mod:`sluice.coordinator.sendtime`) expires a
message whose offer ended, defers one that would land in quiet hours, and moves its cap
count to the day it actually goes out.

Each message is isolated: an error while sending, reconciling or settling one message
fails or leaves that message (counted), never the batch or the run. A failure of the
channel itself (:class:`~sluice.channels.base.ChannelDownError`: authentication refused,
TLS, an unknown host) opens the channel's circuit breaker at once: its remaining messages
stay reserved for a resume, and :attr:`Deliverer.down` says why.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from sluice.channels.base import (
    AmbiguousSendError,
    BatchTransport,
    ChannelDownError,
    OutboundMessage,
    PermanentSendError,
    TransientSendError,
    Transport,
)
from sluice.coordinator.sendtime import SendRules
from sluice.store.ledger import DeliveryRow, Ledger

log = logging.getLogger("sluice.delivery")
_T = TypeVar("_T")


@dataclass(frozen=True)
class DeliveryPolicy:
    transient_attempts: int = 3
    backoff_s: float = 0.2
    lease: timedelta = timedelta(minutes=2)
    """How long a claim holds a row: longer than any one attempt can take (connect, send,
    the provider's reply), so a live attempt's lease never runs out under it."""
    batch: int = 32
    """Rows a worker claims, sends and settles together."""
    durable_batch: int = 1000
    """The same for a transport that makes many messages durable at once: its rows go
    in batches this large, so one claim, one write and one settlement cover them."""


def worker_id() -> str:
    """A name for this process's deliverer, unique across hosts and restarts."""
    return f"{socket.gethostname()[:24]}:{os.getpid()}:{secrets.token_hex(4)}"


class Deliverer:
    def __init__(
        self,
        ledger: Ledger,
        transports: dict[str, Transport],
        concurrency: dict[str, int],
        policy: DeliveryPolicy | None = None,
        brand: str | None = None,
        owner: str | None = None,
        rules: SendRules | None = None,
    ) -> None:
        self.ledger = ledger
        self.rules = rules
        """The send-time re-check (none: send as booked)."""
        self.brand = brand
        """With a brand, every claim re-checks suppressions and paused arms."""
        self.transports = transports
        self.workers = {ch: max(1, concurrency.get(ch, 1)) for ch in transports}
        self.pools = {
            ch: ThreadPoolExecutor(max_workers=n, thread_name_prefix=f"deliver-{ch}")
            for ch, n in self.workers.items()
        }
        self.policy = policy or DeliveryPolicy()
        self.owner = owner or worker_id()
        self.down: dict[str, str] = {}
        """Channels whose circuit breaker is open, with the cause."""
        self._lock = threading.Lock()

    def deliver(self, rows: list[DeliveryRow]) -> Counter[str]:
        """Deliver every row (blocking until all are settled); counts outcomes.

        Each channel's rows are split into batches, one per worker at a time: a batch is
        claimed under one lease in one statement, sent over the worker's connection (or,
        on a transport that makes many messages durable at once, in one call), and its
        sends settled in one transaction."""
        futures = []
        for channel, pool in self.pools.items():
            mine = [r for r in rows if r.channel == channel]
            if isinstance(self.transports[channel], BatchTransport):
                size = self.policy.durable_batch
            else:
                size = max(1, min(self.policy.batch, -(-len(mine) // self.workers[channel])))
            futures += [
                pool.submit(self._batch, mine[i : i + size]) for i in range(0, len(mine), size)
            ]
        outcome: Counter[str] = Counter()
        for f in futures:
            outcome.update(f.result())
        return outcome

    def drain(self, fetch: Callable[[], list[DeliveryRow]]) -> Counter[str]:
        """Deliver the rows ``fetch`` returns until none is left that this deliverer can
        settle. Rows under another worker's live lease (a worker that died mid-send, or
        one still sending) are waited for until the lease runs out, at most one lease
        period past now, and then reconciled; whatever is still held then is left for a
        later resume and counted ``busy``."""
        total: Counter[str] = Counter()
        deadline = time.monotonic() + self.policy.lease.total_seconds() + 5
        while True:
            rows = fetch()
            done = self.deliver(rows)
            busy = done.pop("busy", 0)
            total.update(done)
            if not busy:
                return total
            # The busy rows' leases are as they were fetched: nobody but their holder
            # (or its successor after expiry) has touched them since.
            held = [r.lease_until for r in rows if r.lease_until is not None]
            left = deadline - time.monotonic()
            if not held or left <= 0:
                total["busy"] = busy
                return total
            wait = (min(held) - self.ledger.clock.now()).total_seconds()
            time.sleep(min(max(wait, 0.0) + 0.25, left))

    def _batch(self, rows: list[DeliveryRow]) -> Counter[str]:
        """One worker's batch. Rows an earlier attempt stamped go one at a time (take-over
        and reconciliation); the rest pass the send-time re-check, are claimed together,
        and are sent while the claim's lease leaves room for a whole attempt."""
        out: Counter[str] = Counter()
        ready: list[DeliveryRow] = []
        for row in rows:
            if row.attempt_started_at is not None or row.channel in self.down:
                out[self._isolated(row)] += 1
                continue
            held = self._guard(row, self._recheck, row)
            if held is None:
                ready.append(row)
            else:
                out[held] += 1
        if not ready:
            return out
        lease = self.policy.lease
        # The lease is longer than one attempt by half again (see lease_for): no attempt
        # starts once less than a whole attempt's time is left of it.
        last_start = time.monotonic() + lease.total_seconds() / 3
        claimed = self._guard(
            ready[0],
            self.ledger.claim_many,
            [r.idempotency_key for r in ready],
            self.owner,
            lease,
            self.brand,
        )
        if not isinstance(claimed, set):  # the claim itself failed: all stay reserved
            out[claimed] += len(ready)
            return out
        sent: list[tuple[str, str]] = []
        holding = [r for r in ready if r.idempotency_key in claimed]
        for row in ready:
            if row.idempotency_key not in claimed:
                out[self._isolated(row, claim=False)] += 1
        for row, verdict in self._send(holding, last_start):
            if isinstance(verdict, tuple):
                sent.append(verdict)
            elif verdict == "retry":
                time.sleep(self.policy.backoff_s)
                out[self._isolated(row)] += 1
            else:
                out[verdict] += 1
        if not sent:
            return out
        try:
            self.ledger.mark_sent_many(sent, self.owner)
        except Exception:  # each lease runs out; a resume reconciles them as delivered
            log.exception("could not record %d sends", len(sent))
            out["error"] += len(sent)
        else:
            out["sent"] += len(sent)
        return out

    def _send(
        self, rows: list[DeliveryRow], last_start: float
    ) -> Iterator[tuple[DeliveryRow, tuple[str, str] | str]]:
        """Send the rows this worker holds: each verdict as :meth:`_attempt` gives it. A
        transport that makes many messages durable at once gets them in one call; on
        any other, no attempt starts once ``last_start`` has passed."""
        transport = self.transports[rows[0].channel] if rows else None
        if (
            isinstance(transport, BatchTransport)
            and len(rows) > 1
            and rows[0].channel not in self.down
            and time.monotonic() <= last_start
        ):
            yield from zip(rows, self._attempt_many(transport, rows), strict=True)
            return
        for row in rows:
            if row.channel in self.down or time.monotonic() > last_start:
                key = row.idempotency_key
                self._guard(row, self.ledger.release, key, "not started in time", self.owner)
                yield row, self._isolated(row)
                continue
            yield row, self._guard(row, self._attempt, row)

    def _attempt_many(
        self, transport: BatchTransport, rows: list[DeliveryRow]
    ) -> list[tuple[str, str] | str]:
        """One send of many held rows. When it fails, each row is reconciled on its own:
        delivered, sent; surely not, sent again alone; unknown, failed as ambiguous."""
        messages = [OutboundMessage.from_payload(r.idempotency_key, r.payload) for r in rows]
        try:
            ids = transport.send_many(messages)
        except ChannelDownError as exc:
            return [self._channel_down(r, exc) for r in rows]
        except Exception:
            log.exception("sending %d messages at once failed; each is reconciled", len(rows))
            return [
                self._guard(r, self._after_batch, transport, r, m)
                for r, m in zip(rows, messages, strict=True)
            ]
        return [(m.idempotency_key, i) for m, i in zip(messages, ids, strict=True)]

    def _after_batch(
        self, transport: BatchTransport, row: DeliveryRow, message: OutboundMessage
    ) -> tuple[str, str] | str:
        known = self._reconcile(transport, message)
        if known is True:
            return message.idempotency_key, f"reconciled:{message.idempotency_key}"
        if known is False:
            return self._attempt(row)
        self.ledger.mark_failed(
            message.idempotency_key,
            "ambiguous: a batch send failed and the provider may have the message",
            delivered_maybe=True,
            owner=self.owner,
        )
        return "failed"

    def _guard(self, row: DeliveryRow, step: Callable[..., _T], *args: Any) -> _T | str:
        """Run one message's step; its failure is that message's, never the batch's."""
        try:
            return step(*args)
        except ChannelDownError as exc:
            return self._channel_down(row, exc)
        except Exception:  # one message's trouble must not stop the others
            log.exception("delivering %s failed unexpectedly", row.idempotency_key)
            return "error"

    def _channel_down(self, row: DeliveryRow, exc: ChannelDownError) -> str:
        """The channel failed as a whole: its circuit opens, the row goes back reserved."""
        with self._lock:
            first = row.channel not in self.down
            self.down.setdefault(row.channel, str(exc))
        if first:
            log.error("channel %s is down, delivery on it stops: %s", row.channel, exc)
        try:
            self.ledger.release(row.idempotency_key, f"channel down: {exc}", owner=self.owner)
        except Exception:  # the lease runs out and a resume takes the row over
            log.exception("could not release %s", row.idempotency_key)
        return "channel_down"

    def _isolated(self, row: DeliveryRow, claim: bool = True) -> str:
        """One message on its own, start to end (``claim=False``: a row the batch claim
        did not get, which may have been withdrawn by a suppression)."""
        if row.channel in self.down:
            return "channel_down"
        if not claim:
            return str(self._guard(row, self._unclaimed, row.idempotency_key))
        return str(self._guard(row, self._one, row))

    def _unclaimed(self, key: str) -> str:
        if self.brand is not None and self.ledger.withdraw_blocked(key, self.brand):
            return "suppressed"
        return "skipped"

    def _reconcile(self, transport: Transport, message: OutboundMessage) -> bool | None:
        try:
            return transport.reconcile(message)
        except ChannelDownError:
            raise
        except Exception:
            log.exception("reconciling %s failed", message.idempotency_key)
            return None

    def _recheck(self, row: DeliveryRow) -> str | None:
        """The send-time re-check: None to go ahead, else what became of the row."""
        if self.rules is None:
            return None
        key = row.idempotency_key
        check = self.rules.check(row, self.ledger.clock.now())
        if check.action == "expire":
            return "expired" if self.ledger.expire(key, check.reason) else "skipped"
        if check.action in ("defer", "move"):
            assert check.day is not None
            moved = self.ledger.reschedule(key, check.day, self.rules.cap, check.until)
            if moved != "moved":
                return {"deferred": "deferred", "capped": "capped"}.get(moved, "skipped")
        return None

    def _one(self, row: DeliveryRow) -> str:
        transport = self.transports[row.channel]
        message = OutboundMessage.from_payload(row.idempotency_key, row.payload)
        key, me, lease = row.idempotency_key, self.owner, self.policy.lease
        if row.attempt_started_at is not None:
            # An earlier attempt may have reached the provider: only once its lease ran
            # out, and by one worker, is it reconciled; a live lease is someone's send.
            if not self.ledger.take_over(key, me, lease):
                return "busy"
            known = self._reconcile(transport, message)
            if known is True:
                self.ledger.mark_sent(key, f"reconciled:{key}", owner=me)
                return "sent"
            if known is None:
                self.ledger.mark_failed(
                    key,
                    "ambiguous: the provider may have the message; reconcile by hand",
                    delivered_maybe=True,
                    owner=me,
                )
                return "failed"
            if not self.ledger.release(key, "reconciled: not delivered", owner=me):
                return "busy"
        held = self._recheck(row)
        if held is not None:
            return held
        for attempt in range(self.policy.transient_attempts):
            if not self.ledger.claim(key, me, lease, self.brand):
                return self._unclaimed(key)
            verdict = self._attempt(row)
            if isinstance(verdict, tuple):
                self.ledger.mark_sent(key, verdict[1], owner=me)
                return "sent"
            if verdict != "retry":
                return verdict
            time.sleep(self.policy.backoff_s * 2**attempt)
        self.ledger.mark_failed(key, "transient errors on every attempt", owner=me)
        return "failed"

    def _attempt(self, row: DeliveryRow) -> tuple[str, str] | str:
        """One send of a row this worker holds. ``(key, provider id)`` when it went out
        (for the caller to settle); ``retry`` when it surely did not and may be tried
        again (released); otherwise the settled outcome."""
        transport = self.transports[row.channel]
        key, me = row.idempotency_key, self.owner
        message = OutboundMessage.from_payload(key, row.payload)
        try:
            return key, transport.send(message)
        except TransientSendError as exc:
            self.ledger.release(key, f"transient: {exc}", owner=me)
            return "retry"
        except PermanentSendError as exc:
            self.ledger.mark_failed(key, f"refused: {exc}", owner=me)
            return "failed"
        except AmbiguousSendError as exc:
            known = self._reconcile(transport, message)
            if known is True:
                return key, f"reconciled:{key}"
            if known is False:
                self.ledger.release(key, f"ambiguous, reconciled as not delivered: {exc}", owner=me)
                return "retry"
            self.ledger.mark_failed(key, f"ambiguous: {exc}", delivered_maybe=True, owner=me)
            return "failed"
        except ChannelDownError:
            raise
        except Exception as exc:  # a bug in one transport must not lose the message silently
            log.exception("sending %s failed unexpectedly", key)
            self.ledger.mark_failed(key, f"error: {type(exc).__name__}: {exc}", owner=me)
            return "failed"

    def close(self) -> None:
        for pool in self.pools.values():
            pool.shutdown(wait=True)
        for t in self.transports.values():
            t.close()
