"""Handing reserved messages to channel workers, and recording what happened.

For each reserved row: an attempt still stamped from before a crash is reconciled first
(delivered: sent; not delivered: sent again under the same key; unknown: failed as
ambiguous, for a person to resolve). Otherwise the row is claimed, sent, and marked
sent, failed, or released for another try (transient errors, with backoff, a bounded
number of times). Each channel has its own pool of workers. A claim re-checks the
suppression list and the campaign's paused arms in the same statement, so an unsubscribe
or a guardrail that lands after gating still stops the send.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sluice.channels.base import (
    AmbiguousSendError,
    OutboundMessage,
    PermanentSendError,
    TransientSendError,
    Transport,
)
from sluice.store.ledger import DeliveryRow, Ledger

log = logging.getLogger("sluice.delivery")


@dataclass(frozen=True)
class DeliveryPolicy:
    transient_attempts: int = 3
    backoff_s: float = 0.2


class Deliverer:
    def __init__(
        self,
        ledger: Ledger,
        transports: dict[str, Transport],
        concurrency: dict[str, int],
        policy: DeliveryPolicy | None = None,
        brand: str | None = None,
    ) -> None:
        self.ledger = ledger
        self.brand = brand
        """With a brand, every claim re-checks suppressions and paused arms."""
        self.transports = transports
        self.pools = {
            ch: ThreadPoolExecutor(
                max_workers=max(1, concurrency.get(ch, 1)), thread_name_prefix=f"deliver-{ch}"
            )
            for ch in transports
        }
        self.policy = policy or DeliveryPolicy()

    def deliver(self, rows: list[DeliveryRow]) -> Counter[str]:
        """Deliver every row (blocking until all are settled); counts outcomes."""
        futures = [
            self.pools[r.channel].submit(self._one, r) for r in rows if r.channel in self.pools
        ]
        outcome: Counter[str] = Counter(f.result() for f in futures)
        return outcome

    def _one(self, row: DeliveryRow) -> str:
        transport = self.transports[row.channel]
        message = OutboundMessage.from_payload(row.idempotency_key, row.payload)
        key = row.idempotency_key
        if row.attempt_started_at is not None:
            known = transport.reconcile(message)
            if known is True:
                self.ledger.mark_sent(key, f"reconciled:{key}")
                return "sent"
            if known is None:
                self.ledger.mark_failed(
                    key,
                    "ambiguous: the provider may have the message; reconcile by hand",
                    delivered_maybe=True,
                )
                return "failed"
            self.ledger.release(key, "reconciled: not delivered")
        for attempt in range(self.policy.transient_attempts):
            if not self.ledger.claim(key, self.brand):
                if self.brand is not None and self.ledger.withdraw_blocked(key, self.brand):
                    return "suppressed"
                return "skipped"
            try:
                provider_id = transport.send(message)
            except TransientSendError as exc:
                self.ledger.release(key, f"transient: {exc}")
                time.sleep(self.policy.backoff_s * 2**attempt)
                continue
            except PermanentSendError as exc:
                self.ledger.mark_failed(key, f"refused: {exc}")
                return "failed"
            except AmbiguousSendError as exc:
                known = transport.reconcile(message)
                if known is True:
                    self.ledger.mark_sent(key, f"reconciled:{key}")
                    return "sent"
                if known is False:
                    self.ledger.release(key, f"ambiguous, reconciled as not delivered: {exc}")
                    continue
                self.ledger.mark_failed(key, f"ambiguous: {exc}", delivered_maybe=True)
                return "failed"
            except Exception as exc:  # a bug in one transport must not lose the message silently
                log.exception("sending %s failed unexpectedly", key)
                self.ledger.mark_failed(key, f"error: {type(exc).__name__}: {exc}")
                return "failed"
            self.ledger.mark_sent(key, provider_id)
            return "sent"
        self.ledger.mark_failed(key, "transient errors on every attempt")
        return "failed"

    def close(self) -> None:
        for pool in self.pools.values():
            pool.shutdown(wait=True)
        for t in self.transports.values():
            t.close()
