"""The journey engine: one tick applies events, advances due instances, sends in batches.

:meth:`JourneyEngine.tick` drains the event inbox (exits, awaited events, entries),
claims due instances in batches with a lease, walks each through its steps
(:func:`sluice.journeys.steps.walk`) and commits the moves; instances that reached a
send step on a decision that could come out otherwise if taken again (an awaited event,
a profile attribute, a score) are committed *at* that step first, so the decision to
send is durable before anything is sent; a walk that only waited out timers or took a
random split decides the same when replayed, and is committed with its send's record
(:func:`~sluice.journeys.steps.replays`). Their sends go to the delivery pipeline in
one batch per step and entry generation (:mod:`sluice.journeys.sends`), and each
instance then walks on from the step after its send, its clock moved to the deferral
when quiet hours deferred it. Every move is a compare-and-set on the instance's step
count, written with its step log rows (:mod:`sluice.store.instances`): a crash
anywhere repeats no step and skips none; a send step decided again finds its batch
already booked.
"""

from __future__ import annotations

import logging
import os
import socket
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sluice.channels.unsubscribe import Keyring
from sluice.contracts.clock import SYSTEM_CLOCK, Clock
from sluice.contracts.journey import JourneySpec
from sluice.coordinator.core import CoordinatorCore
from sluice.generation.cache import DraftCache
from sluice.journeys.context import Profiles, Scored, Scorer
from sluice.journeys.entries import EntryRequest, enter_many
from sluice.journeys.inbox import Applied, apply_inbox
from sluice.journeys.sends import SendContext, candidates, send_outcome_label
from sluice.journeys.steps import Facts, SeenEvent, replays, walk
from sluice.store.db import connect
from sluice.store.events import EventStore
from sluice.store.instance_claims import Instances
from sluice.store.instances import LIVE, Instance, Move, StepRecord
from sluice.store.journey_sends import send_outcomes
from sluice.store.journeys import ACTIVE, Journeys

log = logging.getLogger("sluice.journeys")


@dataclass(frozen=True)
class EngineConfig:
    database_url: str
    home: Path
    batch: int = 1000
    """Instances claimed, and inbox events applied, per round."""
    lease: timedelta = timedelta(minutes=5)
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    models: Callable[[str], Any] | None = None
    """Loads a registered model by URI (``name@alias``) for score branches and decisions."""


@dataclass
class TickReport:
    events: int = 0
    steps: int = 0
    sends: int = 0
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, other: TickReport) -> None:
        self.events += other.events
        self.steps += other.steps
        self.sends += other.sends
        self.counts.update(other.counts)


class JourneyEngine:
    def __init__(
        self, config: EngineConfig, unsubscribe_keys: Keyring, clock: Clock = SYSTEM_CLOCK
    ):
        self.config, self.clock, self.keys = config, clock, unsubscribe_keys
        self.engine = connect(config.database_url)
        self.journeys = Journeys(self.engine, clock)
        self.instances = Instances(self.engine)
        self.specs: dict[str, JourneySpec] = {}
        self.active: set[str] = set()
        self._cores: dict[str, CoordinatorCore] = {}
        self._scorers: dict[str, Scorer] = {}
        self._drafts = DraftCache(config.home / "drafts")
        self.llm_calls = 0
        """Drafts the LLM generated for this engine's sends."""
        self.reload()

    # -- deployed journeys -------------------------------------------------------------
    def reload(self) -> None:
        """Read the deployed journeys (a deploy, pause or resume takes effect here)."""
        records = self.journeys.all()
        self.close()  # a redeployed journey's sends use its new spec
        self.specs = {r.journey_id: JourneySpec.model_validate(r.spec) for r in records}
        self.active = {r.journey_id for r in records if r.status == ACTIVE}

    def profiles(self, journey_id: str) -> Profiles:
        return Profiles(self.specs[journey_id].customers)

    def _zone(self, journey_id: str) -> Callable[[str], str]:
        return self.profiles(journey_id).zone

    # -- entries through the API or a schedule ------------------------------------------
    def enter(self, journey_id: str, requests: Sequence[EntryRequest]) -> dict[str, str]:
        """Enter customers directly; per customer, the instance id or ``refused:<why>``."""
        if journey_id not in self.active:
            return {r.customer_id: "refused:paused" for r in requests}
        spec = self.specs[journey_id]
        return enter_many(self.engine, spec, requests, self._zone(journey_id), self.clock.now())

    # -- the tick ---------------------------------------------------------------------
    def apply_events(self) -> Applied:
        return apply_inbox(
            self.engine, self.specs, self.active, self._zone, self.clock.now(), self.config.batch
        )

    def tick(self, max_rounds: int = 1000) -> TickReport:
        """Apply every queued event and advance every due instance (bounded rounds)."""
        report = TickReport()
        for _ in range(max_rounds):
            applied = self.apply_events()
            report.events += applied.events
            report.counts.update(applied.counts)
            advanced = self.advance()
            report.add(advanced)
            if applied.events == 0 and advanced.steps == 0 and advanced.sends == 0:
                break
        return report

    def advance(self) -> TickReport:
        """One round: claim due instances, walk them, send, commit."""
        now = self.clock.now()
        owner = self.config.owner
        claimed = self.instances.claim_due(now, owner, now + self.config.lease, self.config.batch)
        report = TickReport()
        if not claimed:
            return report
        paused = [i.instance_id for i in claimed if i.journey_id not in self.active]
        if paused:
            self.instances.release(paused, owner)
        by_journey: dict[str, list[Instance]] = defaultdict(list)
        for inst in claimed:
            if inst.journey_id in self.active:
                by_journey[inst.journey_id].append(inst)
        for jid, insts in by_journey.items():
            report.add(self._advance_journey(self.specs[jid], insts, now))
        return report

    def _facts(self, spec: JourneySpec, insts: Sequence[Instance], now: datetime) -> Facts:
        profiles = self.profiles(spec.journey_id)
        facts = Facts(profiles.attributes, profiles.zone)
        branches = [s.branch for s in spec.steps if s.branch is not None]
        if any(b.event is not None for b in branches):
            since = min(i.entered_at for i in insts)
            seen: dict[str, list[SeenEvent]] = defaultdict(list)
            for e in EventStore(self.engine, self.clock).with_properties(
                {i.customer_id for i in insts}, since, now + timedelta(microseconds=1)
            ):
                seen[e.customer_id].append(SeenEvent(e.type, e.occurred_at, e.properties))
            facts.events = seen
        if any(b.score is not None for b in branches):
            scored = self._score(spec, [i.customer_id for i in insts])
            facts.scores = scored.scores if scored else {}
        return facts

    def _score(self, spec: JourneySpec, ids: Sequence[str]) -> Scored | None:
        if spec.features is None or self.config.models is None:
            return None
        scorer = self._scorers.get(spec.journey_id)
        if scorer is None:
            scorer = Scorer(spec.features, self.config.models(spec.model), clock=self.clock)
            self._scorers[spec.journey_id] = scorer
        return scorer.score(ids, at=self.clock.now())

    def _advance_journey(
        self, spec: JourneySpec, insts: Sequence[Instance], now: datetime
    ) -> TickReport:
        report = TickReport()
        facts = self._facts(spec, insts, now)
        moves: list[Move] = []
        at_send: list[Instance] = []
        replayed: dict[str, Move] = {}
        for inst in insts:
            assert inst.step is not None
            if spec.step(inst.step).send is not None:
                at_send.append(inst)  # decided before; the send is owed
                continue
            move = Move(inst)
            completing = spec.step(inst.step).wait is not None
            base = inst.due_at or now
            if not walk(spec, move, inst.step, facts, now, base, completing):
                moves.append(move)
            elif replays(move):
                replayed[inst.instance_id] = move  # committed with its send's record
                at_send.append(inst)
            else:
                moves.append(move)
                at_send.append(self._moved(inst, move))
        keep = {i.instance_id for i in at_send}
        report.steps += self._commit(moves, now, keep, report)
        for _ in range(len(spec.steps) + 1):
            if not at_send:
                break
            moves, at_send = self._send(spec, at_send, facts, now, report, replayed)
            replayed = {}
            keep = {i.instance_id for i in at_send}
            report.steps += self._commit(moves, now, keep, report)
        return report

    @staticmethod
    def _moved(inst: Instance, move: Move) -> Instance:
        """The instance as it stands once ``move`` is committed."""
        return replace(
            inst,
            seq=inst.seq + len(move.records),
            step=move.step,
            due_at=move.due_at,
            woken_by=None if move.records else inst.woken_by,
        )

    def _commit(self, moves: list[Move], now: datetime, keep: set[str], report: TickReport) -> int:
        moves = [m for m in moves if m.records or m.state != LIVE or m.step != m.instance.step]
        applied = self.instances.commit(moves, self.config.owner, now, keep)
        for m in applied:
            for r in m.records:
                report.counts[f"{r.step_id}:{r.outcome}"] += 1
            if m.state != LIVE:
                report.counts[m.state] += 1
        return sum(len(m.records) for m in applied)

    def _send(
        self,
        spec: JourneySpec,
        insts: Sequence[Instance],
        facts: Facts,
        now: datetime,
        report: TickReport,
        replayed: dict[str, Move],
    ) -> tuple[list[Move], list[Instance]]:
        """Send the instances at send steps, one batch per step and generation; the
        moves that record each send and walk on. An instance in ``replayed`` stands
        where its claim found it: its move there is committed with the send's record."""
        groups: dict[tuple[str, int], list[Instance]] = defaultdict(list)
        for inst in insts:
            before = replayed.get(inst.instance_id)
            at = inst.step if before is None else before.step
            assert at is not None
            groups[(at, inst.generation)].append(inst)
        moves: list[Move] = []
        onward: list[Instance] = []
        for (step_id, generation), group in groups.items():
            step = spec.step(step_id)
            assert step.send is not None
            run_id = spec.step_run_id(step_id, generation)
            core = self._core(spec, run_id)
            scored = (
                self._score(spec, [i.customer_id for i in group])
                if step.send.offer == "decision" or step.send.channel == "best"
                else None
            )
            ctx = SendContext(
                spec, core.catalog, self.profiles(spec.journey_id), scored,
                self.clock.today(), self._drafts,
            )  # fmt: skip
            counts = core.submit(candidates(ctx, run_id, step.send, group))
            self.llm_calls += ctx.llm["generated"]
            report.sends += len(group)
            report.counts.update({f"pipeline:{k}": v for k, v in counts.items()})
            outcomes = send_outcomes(self.engine, run_id, [i.customer_id for i in group])
            for inst in group:
                o = outcomes.get(inst.customer_id)
                label = send_outcome_label(o.outcome, o.gate, o.state) if o else "not_recorded"
                detail = {"run_id": run_id}
                if o is not None and o.reason:
                    detail["reason"] = o.reason
                base = now
                if o is not None and o.send_after is not None and o.state == "deferred":
                    base = max(now, o.send_after)
                    detail["send_after"] = base.isoformat()
                record = StepRecord(step_id, "send", label, detail)
                before = replayed.get(inst.instance_id)
                move = Move(inst, [record] if before is None else [*before.records, record])
                nxt = step.next or spec.following(step_id)
                if walk(spec, move, nxt, facts, now, base, completing=False):
                    onward.append(self._moved(inst, move))
                moves.append(move)
        return moves, onward

    def _core(self, spec: JourneySpec, run_id: str) -> CoordinatorCore:
        core = self._cores.get(run_id)
        if core is None:
            delivery = spec.delivery_spec()
            self.journeys.ensure_run(run_id, spec.journey_id, delivery.public(), dry=False)
            core = CoordinatorCore(
                run_id,
                delivery,
                False,
                self.config.database_url,
                self.keys,
                self.clock.today(),
                clock=self.clock,
            )
            self._cores[run_id] = core
        return core

    def core_of(self, run_id: str) -> CoordinatorCore | None:
        """The coordinator of one of this engine's journey runs, if it has made it."""
        return self._cores.get(run_id)

    def close(self) -> None:
        for core in self._cores.values():
            core.close()
        self._cores.clear()


__all__ = ["EngineConfig", "JourneyEngine", "TickReport"]
