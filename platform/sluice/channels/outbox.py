"""The file outbox: messages written to JSONL (or Parquet) instead of a provider.

Useful for channels another system picks up, and for exports. Writes are flushed and
fsynced before a message counts as sent (concurrent senders share one fsync);
reconciliation reads the outbox back, so an interrupted run can tell exactly which
messages it had written. Outbox files hold
addresses and unsubscribe tokens: they are created 0600, in directories created 0700
(:mod:`sluice.privatefs`).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import TextIO

import pyarrow as pa
import pyarrow.parquet as pq

from sluice.channels.base import OutboundMessage
from sluice.privatefs import open_private, private_dir, private_fd
from sluice.runids import check_run_id

_FIELDS = tuple(f.name for f in fields(OutboundMessage) if f.name != "extra")
"""A message's fields as an outbox line holds them (all of them flat strings)."""


class OutboxTransport:
    name = "outbox"

    def __init__(self, directory: Path, run_id: str, channel: str, fmt: str = "jsonl") -> None:
        self.dir = private_dir(directory / check_run_id(run_id))
        self.fmt = fmt
        self.channel = channel
        self.path = self.dir / f"{channel}.jsonl"
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._fh: TextIO | None = None
        self._written = 0
        self._synced = 0

    def send(self, message: OutboundMessage) -> str:
        return self.send_many([message])[0]

    def send_many(self, messages: Sequence[OutboundMessage]) -> list[str]:
        """Write every message and return once all are on disk: JSONL lines share one
        write and one fsync (with other senders' lines written meanwhile); Parquet writes
        one file per message, replaced into place."""
        records = [{k: getattr(m, k) for k in _FIELDS} for m in messages]
        if self.fmt == "parquet":
            return [self._parquet(m, r) for m, r in zip(messages, records, strict=True)]
        lines = "".join(json.dumps(r, default=str) + "\n" for r in records)
        with self._lock:
            if self._fh is None:
                self._fh = open_private(self.path)
            self._fh.write(lines)
            self._fh.flush()
            self._written += 1
            mine, fd = self._written, self._fh.fileno()
        self._sync(mine, fd)
        return [f"{self.path.name}:{m.idempotency_key}" for m in messages]

    def _parquet(self, message: OutboundMessage, record: dict[str, object]) -> str:
        target = self.dir / f"{self.channel}-{message.idempotency_key}.parquet"
        tmp = target.with_suffix(".tmp")
        with self._lock:
            fd = private_fd(tmp, os.O_WRONLY | os.O_TRUNC)
            with os.fdopen(fd, "wb") as out:
                pq.write_table(pa.Table.from_pylist([record]), out)
            tmp.replace(target)
        return str(target.name)

    def _sync(self, mine: int, fd: int) -> None:
        """Return once an fsync that began after write ``mine`` has finished: senders
        that wrote meanwhile share one fsync (group commit), none counts as sent before
        its line is on disk."""
        with self._sync_lock:
            if self._synced >= mine:
                return
            with self._lock:
                upto = self._written
            os.fsync(fd)
            self._synced = upto

    def reconcile(self, message: OutboundMessage) -> bool:
        if self.fmt == "parquet":
            return (self.dir / f"{self.channel}-{message.idempotency_key}.parquet").exists()
        if not self.path.exists():
            return False
        key = message.idempotency_key
        with self.path.open(encoding="utf-8") as fh:
            return any(
                key in line and json.loads(line).get("idempotency_key") == key for line in fh
            )

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
