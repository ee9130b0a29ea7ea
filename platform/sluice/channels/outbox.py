"""The file outbox: messages written to JSONL (or Parquet) instead of a provider.

Useful for channels another system picks up, and for exports. Writes are flushed and
fsynced before a message counts as sent; reconciliation reads the outbox back, so an
interrupted run can tell exactly which messages it had written. Outbox files hold
addresses and unsubscribe tokens: they are created 0600, in directories created 0700
(:func:`private_dir`, :func:`open_private`; dry-run samples use the same helpers).
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

import pyarrow as pa
import pyarrow.parquet as pq

from sluice.channels.base import OutboundMessage
from sluice.errors import InputError

RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""A run id: 1 to 128 letters, digits, ``.``, ``_`` or ``-``, the first a letter or digit
(so never ``.`` or ``..``, a path separator or a control character)."""


def check_run_id(run_id: str) -> str:
    """``run_id`` if it is one (see :data:`RUN_ID`), else InputError naming ``run_id``.
    Run ids name directories (the run's work directory, its outbox), so every place a
    run id comes in checks it."""
    if not RUN_ID.fullmatch(run_id):
        raise InputError(
            f"run_id: {run_id!r} is not a run id (1 to 128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit)",
            field="run_id",
        )
    return run_id


def private_dir(path: Path, tighten: bool = False) -> Path:
    """``path`` as a directory; those created here (parents too) are 0700 whatever the
    umask. ``tighten``: an existing ``path`` is made 0700 as well."""
    missing: list[Path] = []
    p = path
    while not p.is_dir():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            if not d.is_dir():
                raise
            continue  # a concurrent creator's directory
        d.chmod(0o700)
    if tighten and path.stat().st_mode & 0o077:
        path.chmod(0o700)
    return path


def _private_fd(path: Path, flags: int) -> int:
    """``path`` opened with ``flags`` (plus O_CREAT), created 0600; an existing file that
    others may read is tightened to 0600 where this process owns it."""
    fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    except PermissionError:
        pass  # not ours to change; it was readable before
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_private(path: Path) -> TextIO:
    """``path`` opened for appending UTF-8 text, created 0600 in a 0700 directory."""
    private_dir(path.parent)
    return os.fdopen(_private_fd(path, os.O_WRONLY | os.O_APPEND), "a", encoding="utf-8")


class OutboxTransport:
    name = "outbox"

    def __init__(self, directory: Path, run_id: str, channel: str, fmt: str = "jsonl") -> None:
        self.dir = private_dir(directory / check_run_id(run_id))
        self.fmt = fmt
        self.channel = channel
        self.path = self.dir / f"{channel}.jsonl"
        self._lock = threading.Lock()
        self._seq = 0

    def send(self, message: OutboundMessage) -> str:
        record = {k: v for k, v in asdict(message).items() if k != "extra"}
        with self._lock:
            if self.fmt == "parquet":
                self._seq += 1
                target = self.dir / f"{self.channel}-{message.idempotency_key}.parquet"
                tmp = target.with_suffix(".tmp")
                fd = _private_fd(tmp, os.O_WRONLY | os.O_TRUNC)
                with os.fdopen(fd, "wb") as out:
                    pq.write_table(pa.Table.from_pylist([record]), out)
                tmp.replace(target)
                return str(target.name)
            with open_private(self.path) as fh:
                fh.write(json.dumps(record, default=str) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        return f"{self.path.name}:{message.idempotency_key}"

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
        return None
