"""The coordinator: the only component that acts on what models and LLMs propose.

For each batch of candidate messages it records holdouts, offer-less candidates and
candidates of an arm a guardrail has paused, runs
the gate chain on the rest, reserves every approved send in the ledger (the frequency cap
is counted in that same transaction), writes the audit trail, and hands the reserved
messages to the channel workers. A batch it has seen before (a retried call, a rerun
of the run id) is not gated again: its audit records exist, and its reserved rows are
delivered or reconciled from the ledger. All state lives in the database, so a restarted
coordinator simply carries on.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa

from sluice.channels.unsubscribe import Keyring, Unsubscribe, make_token
from sluice.contracts.campaign import CampaignSpec
from sluice.contracts.clock import SYSTEM_CLOCK, Clock
from sluice.coordinator.delivery import Deliverer, DeliveryPolicy
from sluice.coordinator.keys import idempotency_key
from sluice.coordinator.queued import review_item
from sluice.coordinator.sendtime import SendRules
from sluice.coordinator.transports import concurrency, lease_for, make_transports
from sluice.decisioning.catalog import load_catalog
from sluice.gates.base import (
    DEFER,
    FAIL,
    NO_TIME,
    REVIEW,
    GateContext,
    MessageBatch,
)
from sluice.gates.build import build_chain
from sluice.generation.slots import row_slots
from sluice.privatefs import open_private
from sluice.store.audit import AuditStore
from sluice.store.booking import Booking, book
from sluice.store.db import connect
from sluice.store.incidents import ArmStates
from sluice.store.ledger import Ledger, Reservation
from sluice.store.reservations import booked_row
from sluice.store.reviews import ReviewQueue
from sluice.store.suppressions import Suppressions

log = logging.getLogger("sluice.coordinator")
ADDRESS_FIELD = {"email": "email", "sms": "phone", "push": "customer_id"}
COPY_FIELDS = ("subject", "preheader", "body", "cta", "text")


def capped_at_booking(row: dict[str, Any]) -> None:
    """The audit row of a message the frequency cap refused when it was booked."""
    verdicts = [
        *json.loads(row["verdicts"] or "[]"),
        {
            "gate": "frequency_cap",
            "outcome": "fail",
            "reason": "frequency_cap",
            "detail": "cap reached when reserving",
        },
    ]
    row.update(
        outcome="rejected",
        gate="frequency_cap",
        reason="frequency_cap",
        verdicts=json.dumps(verdicts),
        idempotency_key=None,
    )


def _s(v: Any) -> Any:
    if isinstance(v, float) and np.isnan(v):
        return None
    return v


class CoordinatorCore:
    def __init__(
        self,
        run_id: str,
        spec: CampaignSpec,
        dry_run: bool,
        database_url: str,
        unsubscribe_keys: Keyring,
        decision_date: date,
        sample_path: str | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.run_id, self.spec, self.dry_run = run_id, spec, dry_run
        self.clock = clock
        engine = self.engine = connect(database_url)
        self.ledger, self.audit = Ledger(engine, clock), AuditStore(engine, clock)
        self.reviews = ReviewQueue(engine, clock)
        self.arms = ArmStates(engine)
        self.catalog = load_catalog(spec.offers, decision_date)
        self.chain = build_chain(spec, self.catalog)
        self.services = {"ledger": self.ledger, "suppressions": Suppressions(engine, clock)}
        self.cap = spec.gates.frequency_cap.per_day if spec.gates.frequency_cap else None
        self.unsubscribe_keys = unsubscribe_keys
        transports = {} if dry_run else make_transports(spec, run_id)
        self.deliverer = Deliverer(
            self.ledger,
            transports,
            {ch: concurrency(spec, ch) for ch in transports},
            DeliveryPolicy(lease=lease_for(spec)),
            brand=spec.brand,
            rules=SendRules.of(spec, self.catalog),
        )
        self.sample_path = Path(sample_path) if sample_path else None
        self.sample_left = spec.dry_run_sample if dry_run else 0

    def ping(self) -> str:
        return self.run_id

    def _payload(self, row: dict[str, Any]) -> dict[str, Any]:
        channel = row["channel"]
        token = make_token(
            Unsubscribe(row["customer_id"], self.spec.brand, channel, self.run_id),
            self.unsubscribe_keys,
        )
        payload = {
            "channel": channel,
            "address": row.get(ADDRESS_FIELD[channel]),
            "run_id": self.run_id,
            "campaign_id": self.spec.campaign_id,
            "customer_id": row["customer_id"],
            "decision_id": row["decision_id"],
            "offer_id": row["offer_id"],
            "offer_url": row.get("offer_url"),
            "unsubscribe_token": token,
        }
        payload.update({f: row.get(f) for f in COPY_FIELDS})
        return payload

    def _audit_row(
        self,
        row: dict[str, Any],
        outcome: str,
        gate: str | None,
        reason: str | None,
        verdicts: list[dict[str, Any]] | None,
        key: str | None,
    ) -> dict[str, Any]:
        slots = row_slots(row.get("first_name"), row.get("entry")) if row.get("draft_id") else None
        return {
            "run_id": self.run_id,
            "customer_id": row["customer_id"],
            "decision_id": row["decision_id"],
            "campaign_id": self.spec.campaign_id,
            "arm": row["arm"],
            "model_name": row.get("model_name"),
            "model_version": row.get("model_version"),
            "feature_hash": row.get("feature_hash"),
            "features_at": row.get("features_at"),
            "score": _s(row.get("score")),
            "offer_id": row.get("offer_id"),
            "channel": row.get("channel"),
            "expected_value": _s(row.get("expected_value")),
            "exclusions": row.get("exclusions"),
            "template_version": row.get("template_version"),
            "prompt_hash": row.get("prompt_hash"),
            "copy_source": row.get("copy_source"),
            "draft_id": row.get("draft_id"),
            "slots": json.dumps(slots) if slots else None,
            "verdicts": json.dumps(verdicts) if verdicts is not None else None,
            "outcome": outcome,
            "gate": gate,
            "reason": reason,
            "idempotency_key": key,
        }

    def submit(self, table: pa.Table) -> dict[str, int]:
        """Gate, reserve, record and deliver one batch of candidates; returns its counts."""
        now = self.clock.now()
        batch = MessageBatch(table)
        rows = table.to_pylist()
        counts: Counter[str] = Counter()
        seen = self.audit.recorded(self.run_id, [r["customer_id"] for r in rows])
        fresh = np.array([r["customer_id"] not in seen for r in rows], dtype=bool)
        # A customer twice in the audience: the first row is the customer's decision; a
        # later one is counted and logged, never a second message or a failed batch.
        first: set[str] = set()
        for i, r in enumerate(rows):
            if fresh[i] and r["customer_id"] in first:
                fresh[i] = False
                counts["duplicate"] += 1
                log.warning("run %s: customer %s appears twice", self.run_id, r["customer_id"])
            first.add(r["customer_id"])
        paused = self.arms.paused(self.spec.campaign_id)
        gated = np.array(
            [
                r["arm"] != "holdout"
                and r["arm"] not in paused
                and r.get("offer_id") is not None
                and r.get("channel") is not None
                for r in rows
            ],
            dtype=bool,
        )
        audit_rows: list[dict[str, Any]] = []
        drafts: dict[str, str] = {}
        for i in np.flatnonzero(fresh & ~gated):
            r = rows[i]
            if r["arm"] in paused:
                # A guardrail paused this arm: recorded with its incident, never sent.
                incident = paused[r["arm"]] or "paused"
                audit_rows.append(self._audit_row(r, "arm_paused", "arm", incident, None, None))
                counts["arm_paused"] += 1
                continue
            outcome = "holdout" if r["arm"] == "holdout" else "no_offer"
            audit_rows.append(self._audit_row(r, outcome, None, None, None, None))
            counts[outcome] += 1
        todo = np.flatnonzero(fresh & gated)
        keys: dict[int, str] = {}
        reservations: list[Reservation] = []
        review_items: list[dict[str, Any]] = []
        if len(todo):
            ctx = GateContext(
                self.run_id,
                self.spec.campaign_id,
                self.spec.brand,
                now,
                self.dry_run,
                self.services,
            )
            result = self.chain.run(batch.take(todo), ctx)
            for k, i in enumerate(todo):
                r = rows[i]
                key = idempotency_key(self.run_id, r["customer_id"], r["channel"])
                keys[int(i)] = key
                if r.get("draft_id") and r.get("draft_json"):
                    drafts[r["draft_id"]] = r["draft_json"]
                outcome_code = int(result.outcome[k])
                if outcome_code == REVIEW and not self.dry_run:
                    review_items.append(
                        review_item(
                            self.run_id,
                            self.spec,
                            self.catalog,
                            key,
                            table.slice(int(i), 1),
                            r,
                            result.verdicts[k],
                            now,
                        )
                    )
                if outcome_code in (FAIL, REVIEW):
                    name = "rejected" if outcome_code == FAIL else "review"
                    audit_rows.append(
                        self._audit_row(
                            r,
                            name,
                            str(result.gate[k]),
                            str(result.reason[k]),
                            result.verdicts[k],
                            None,
                        )
                    )
                    counts[name] += 1
                    continue
                until = (
                    None
                    if result.defer_until[k] == NO_TIME
                    else datetime.fromtimestamp(result.defer_until[k] / 1e6, UTC)
                )
                if self.dry_run:
                    name = "would_defer" if outcome_code == DEFER else "would_send"
                    audit_rows.append(self._audit_row(r, name, None, None, result.verdicts[k], key))
                    counts[name] += 1
                    self._sample(r, until)
                    continue
                reservations.append(self.reservation(r, key, until, now))
                audit_rows.append(
                    self._audit_row(
                        r,
                        "deferred" if outcome_code == DEFER else "reserved",
                        None,
                        None,
                        result.verdicts[k],
                        key,
                    )
                )
        # Reservations, audit records and review items: one transaction.
        booked = book(
            self.engine,
            Booking(reservations, audit_rows, drafts, review_items),
            self.cap,
            capped_at_booking,
            self.clock,
        )
        counts["rejected"] += len(booked.capped)
        counts["reserved"] += len(booked.reserved)
        counts["deferred"] += len(booked.deferred)
        if not self.dry_run:
            # Rows booked just now go as booked; any other of the batch's keys (a batch
            # submitted again) is read back, and goes if the ledger still has it reserved.
            now_reserved = set(booked.reserved)
            now_booked = sorted(
                (booked_row(r) for r in reservations if r.idempotency_key in now_reserved),
                key=lambda d: d.idempotency_key,
            )
            others = [
                key
                for key in (
                    idempotency_key(self.run_id, r["customer_id"], r["channel"])
                    for r, g in zip(rows, gated, strict=True)
                    if g
                )
                if key not in now_reserved
            ]
            counts.update(
                self.deliverer.deliver(now_booked + self.ledger.pending(self.run_id, others))
            )
        return dict(counts)

    def reservation(
        self, r: dict[str, Any], key: str, until: datetime | None, now: datetime
    ) -> Reservation:
        local_day = (until or now).astimezone(ZoneInfo(r["time_zone"])).date()
        return Reservation(
            key,
            self.run_id,
            self.spec.campaign_id,
            r["customer_id"],
            r["channel"],
            self.spec.channels_transport(r["channel"]),
            r["decision_id"],
            r["offer_id"],
            r["arm"],
            local_day,
            self._payload(r),
            until,
            r["time_zone"],
        )

    def resume(self) -> dict[str, int]:
        """Deliver what the run still owes: due deferrals and reserved rows (after a crash)."""
        if self.dry_run:
            return {}
        promoted = self.ledger.promote_due(self.run_id, self.clock.now())
        counts = self.deliverer.drain(lambda: self.ledger.pending(self.run_id))
        counts["promoted"] = promoted
        return dict(counts)

    def _sample(self, row: dict[str, Any], until: datetime | None) -> None:
        if self.sample_left <= 0 or self.sample_path is None:
            return
        self.sample_left -= 1
        record = {**self._payload(row), "send_after": until.isoformat() if until else None}
        with open_private(self.sample_path) as fh:  # addresses and tokens: 0600
            fh.write(json.dumps(record, default=str) + "\n")

    def close(self) -> None:
        self.deliverer.close()
