"""One worker's attempts: a message on its own, or a batch a transport takes at once.

Every attempt holds a lease on its ledger row (owner and expiry, see
:mod:`sluice.store.ledger`): a row is claimed, sent, and settled (sent, failed, or
released for another try) only by the worker that holds it, and a live lease is never
touched by anyone else. A row still stamped from an attempt whose lease ran out (its
worker died or hung) is taken over and reconciled with the provider first (delivered:
sent; not delivered: sent again under the same key; unknown: failed as ambiguous, for a
person to resolve). Transient errors are retried with backoff a bounded number of times.
Just before a send, the send-time re-check (:mod:`sluice.coordinator.sendtime`) expires a
message whose offer ended, defers one that would land in quiet hours, and moves its cap
count to the day it actually goes out.

Each message is isolated: an error while sending, reconciling or settling one message
fails or leaves that message (counted), never the batch or the run. A failure of the
channel itself (:class:`~sluice.channels.base.ChannelDownError`: authentication refused,
TLS, an unknown host) opens the channel's circuit breaker at once: its remaining messages
stay reserved for a resume, and :attr:`Attempts.down` says why.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
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


class Attempts:
    """Sending rows one deliverer's workers hold, shared by its workers."""

    def __init__(
        self,
        ledger: Ledger,
        transports: dict[str, Transport],
        policy: DeliveryPolicy,
        owner: str,
        brand: str | None,
        rules: SendRules | None,
    ) -> None:
        self.ledger, self.transports, self.policy = ledger, transports, policy
        self.owner, self.brand = owner, brand
        self.rules = rules
        """The send-time re-check (none: send as booked)."""
        self.down: dict[str, str] = {}
        """Channels whose circuit breaker is open, with the cause."""
        self._lock = threading.Lock()

    def send(
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
                self.guard(row, self.ledger.release, key, "not started in time", self.owner)
                yield row, self.isolated(row)
                continue
            yield row, self.guard(row, self._attempt, row)

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
                self.guard(r, self._after_batch, transport, r, m)
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

    def guard(self, row: DeliveryRow, step: Callable[..., _T], *args: Any) -> _T | str:
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

    def isolated(self, row: DeliveryRow, claim: bool = True) -> str:
        """One message on its own, start to end (``claim=False``: a row the batch claim
        did not get, which may have been withdrawn by a suppression)."""
        if row.channel in self.down:
            return "channel_down"
        if not claim:
            return str(self.guard(row, self._unclaimed, row.idempotency_key))
        return str(self.guard(row, self._one, row))

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

    def recheck(self, row: DeliveryRow) -> str | None:
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
        held = self.recheck(row)
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


__all__ = ["Attempts", "DeliveryPolicy"]
