"""Handing reserved messages to channel workers, and recording what happened.

Each channel has its pool of workers; a worker takes a batch of rows, runs the
send-time re-check on each, claims the ready ones under one lease in one statement
(the claim re-checks the suppression list and the campaign's paused arms in the same
statement, so an unsubscribe or a guardrail that lands after gating still stops the
send), sends them (:mod:`sluice.coordinator.attempts`: one at a time, or in one call on
a transport that makes many messages durable at once) and settles the sent ones in one
transaction. Rows an earlier attempt stamped go one at a time, taken over and
reconciled. :meth:`Deliverer.drain` repeats until nothing this deliverer can settle is
left; :attr:`Deliverer.down` names the channels whose circuit breaker opened.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from sluice.channels.base import BatchTransport, Transport
from sluice.coordinator.attempts import Attempts, DeliveryPolicy
from sluice.coordinator.sendtime import SendRules
from sluice.store.ledger import DeliveryRow, Ledger

log = logging.getLogger("sluice.delivery")


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
        self.attempts = Attempts(ledger, transports, self.policy, self.owner, brand, rules)

    @property
    def down(self) -> dict[str, str]:
        """Channels whose circuit breaker is open, with the cause."""
        return self.attempts.down

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
            if row.attempt_started_at is not None or row.channel in self.attempts.down:
                out[self.attempts.isolated(row)] += 1
                continue
            held = self.attempts.guard(row, self.attempts.recheck, row)
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
        claimed = self.attempts.guard(
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
                out[self.attempts.isolated(row, claim=False)] += 1
        for row, verdict in self.attempts.send(holding, last_start):
            if isinstance(verdict, tuple):
                sent.append(verdict)
            elif verdict == "retry":
                time.sleep(self.policy.backoff_s)
                out[self.attempts.isolated(row)] += 1
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

    def close(self) -> None:
        for pool in self.pools.values():
            pool.shutdown(wait=True)
        for t in self.transports.values():
            t.close()


__all__ = ["Deliverer", "DeliveryPolicy", "worker_id"]
