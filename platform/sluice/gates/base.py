"""The gate chain: ordered gates, one interface, a typed verdict per message.

A :class:`Gate` looks at a whole :class:`MessageBatch` at once and returns
:class:`Verdicts`: per row an outcome (pass, fail, review, defer), a reason code, a
detail and, for deferrals, the time the message may go. :class:`GateChain` runs the
gates in order; a message stops at its first ``fail`` or ``review``; ``defer`` keeps
it going (later gates must still pass) and the latest deferral wins. Every verdict a
message collected is kept for the audit trail.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from sluice.contracts.verdicts import GateOutcome, GateVerdict

PASS, FAIL, REVIEW, DEFER = 0, 1, 2, 3
OUTCOMES = (GateOutcome.PASS, GateOutcome.FAIL, GateOutcome.REVIEW, GateOutcome.DEFER)
NO_TIME = np.iinfo(np.int64).min


class MessageBatch:
    """Candidate messages of one batch, as columns."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self._cache: dict[str, np.ndarray] = {}
        self.defer_until: np.ndarray | None = None
        """Per row, when an earlier gate of the chain deferred the send to (microseconds
        since the epoch, ``NO_TIME`` when not deferred); set by :class:`GateChain`."""

    def __len__(self) -> int:
        return int(self.table.num_rows)

    def has(self, name: str) -> bool:
        return name in self.table.column_names

    def col(self, name: str) -> np.ndarray:
        """A column as a NumPy array (objects for strings; None for nulls)."""
        if name not in self._cache:
            self._cache[name] = np.asarray(self.table.column(name).to_numpy(zero_copy_only=False))
        return self._cache[name]

    def states(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A boolean column as (true, false, null) masks, whatever its storage."""
        import pyarrow.compute as pc

        col = pc.cast(self.table.column(name), pa.bool_())
        true = np.asarray(pc.fill_null(col, False).to_numpy(zero_copy_only=False), bool)
        null = np.asarray(pc.is_null(col).to_numpy(zero_copy_only=False), bool)
        return true, ~true & ~null, null

    def take(self, rows: np.ndarray) -> MessageBatch:
        return MessageBatch(self.table.take(pa.array(rows, pa.int64())))


@dataclass
class Verdicts:
    """One gate's verdicts for the rows of a batch."""

    gate: str
    outcome: np.ndarray
    reason: np.ndarray
    detail: np.ndarray
    defer_until: np.ndarray
    """Microseconds since the epoch (UTC) for deferrals; NO_TIME elsewhere."""

    @classmethod
    def passing(cls, gate: str, n: int) -> Verdicts:
        return cls(
            gate,
            np.zeros(n, np.int8),
            np.full(n, "ok", object),
            np.full(n, "", object),
            np.full(n, NO_TIME, np.int64),
        )

    def set(
        self, mask: np.ndarray, outcome: int, reason: str, detail: str | np.ndarray = ""
    ) -> None:
        self.outcome[mask] = outcome
        self.reason[mask] = reason
        self.detail[mask] = detail if isinstance(detail, str) else detail[mask]

    def verdict(self, i: int) -> GateVerdict:
        until = (
            None
            if self.defer_until[i] == NO_TIME
            else datetime.fromtimestamp(self.defer_until[i] / 1e6, UTC)
        )
        return GateVerdict(
            gate=self.gate,
            outcome=OUTCOMES[int(self.outcome[i])],
            reason_code=str(self.reason[i]),
            detail=str(self.detail[i]),
            defer_until=until,
        )


@dataclass
class GateContext:
    """What gates may consult besides the messages."""

    run_id: str
    campaign_id: str
    brand: str
    now: datetime
    dry_run: bool
    services: dict[str, Any] = field(default_factory=dict)
    """Shared handles (suppression store, ledger, MiniLM model...) by name."""


class Gate(Protocol):
    name: str

    def evaluate(self, batch: MessageBatch, ctx: GateContext) -> Verdicts: ...


@dataclass
class ChainResult:
    """Where each message ended up after the whole chain."""

    outcome: np.ndarray
    gate: np.ndarray
    """Gate that decided a fail/review (or the last deferral); "" for passes."""
    reason: np.ndarray
    defer_until: np.ndarray
    verdicts: list[list[dict[str, Any]]]
    """Every verdict each message collected, in gate order (for the audit trail)."""

    def verdicts_json(self, i: int) -> str:
        return json.dumps(self.verdicts[i])


class GateChain:
    def __init__(self, gates: Sequence[Gate]) -> None:
        self.gates = list(gates)

    @property
    def names(self) -> list[str]:
        return [g.name for g in self.gates]

    def run(self, batch: MessageBatch, ctx: GateContext) -> ChainResult:
        n = len(batch)
        outcome = np.zeros(n, np.int8)
        gate = np.full(n, "", object)
        reason = np.full(n, "ok", object)
        defer_until = np.full(n, NO_TIME, np.int64)
        collected: list[list[dict[str, Any]]] = [[] for _ in range(n)]
        for g in self.gates:
            alive = np.flatnonzero((outcome == PASS) | (outcome == DEFER))
            if len(alive) == 0:
                break
            sub = batch if len(alive) == n else batch.take(alive)
            sub.defer_until = defer_until[alive]
            v = g.evaluate(sub, ctx)
            for k, i in enumerate(alive):
                collected[i].append(
                    {
                        "gate": g.name,
                        "outcome": OUTCOMES[int(v.outcome[k])].value,
                        "reason": str(v.reason[k]),
                        "detail": str(v.detail[k]),
                    }
                )
            stop = (v.outcome == FAIL) | (v.outcome == REVIEW)
            defer = v.outcome == DEFER
            outcome[alive[stop]] = v.outcome[stop]
            gate[alive[stop]] = g.name
            reason[alive[stop]] = v.reason[stop]
            defer_until[alive[stop]] = NO_TIME
            later = defer & (v.defer_until > defer_until[alive])
            idx = alive[defer]
            outcome[idx] = np.where(outcome[idx] == PASS, DEFER, outcome[idx])
            defer_until[alive[later]] = v.defer_until[later]
            gate[alive[later]] = g.name
            reason[alive[later]] = v.reason[later]
        return ChainResult(outcome, gate, reason, defer_until, collected)
