"""Taking outcome events in: validate each, resolve unsubscribe tokens, store once, and,
when the caller asks, let the guardrails of the runs they touch look at the new evidence.

One bad event never drops the batch: it is rejected with its index, field and reason,
and the rest are stored. Used by the back office's ``POST /v1/events`` and unsubscribe
routes (which only store: the orchestrator evaluates guardrails), the Redis stream
consumer and ``sluice events import`` (which evaluates them at once).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from sluice.channels.unsubscribe import Keyring, read_token
from sluice.contracts.clock import SYSTEM_CLOCK, Clock
from sluice.contracts.customer import Channel
from sluice.contracts.feedback import (
    CustomerEvent,
    EventReject,
    EventType,
    IngestResult,
    OutcomeEvent,
)
from sluice.errors import InputError
from sluice.store.db import Engine
from sluice.store.events import EventStore
from sluice.store.journeys import EventCatalog, journey_catalog

if TYPE_CHECKING:
    from sluice.feedback.scope import EventScope
    from sluice.registry.registry import Registry

log = logging.getLogger("sluice.events")


OUTCOMES = frozenset(t.value for t in EventType)
NO_JOURNEYS = EventCatalog(frozenset(), {})


def _kind(item: Mapping[str, Any], catalog: EventCatalog) -> type[OutcomeEvent | CustomerEvent]:
    kind = item.get("type") if isinstance(item, Mapping) else None
    if not isinstance(kind, str) or kind in OUTCOMES:
        return OutcomeEvent
    if kind in catalog.types:
        return CustomerEvent
    known = sorted(OUTCOMES | catalog.types)
    raise ValueError(f"type: unknown event type {kind[:64]!r} (known: {', '.join(known)})")


def _missing_key(e: CustomerEvent, catalog: EventCatalog) -> EventReject | None:
    for journey_id, key in catalog.required.get(e.type, ()):
        if e.properties.get(key) in (None, ""):
            return EventReject(
                index=-1,
                field=f"properties.{key}",
                reason=f"required: journey {journey_id} is entered on {e.type} keyed by {key}",
            )
    return None


def parse_events(
    raw: Iterable[Mapping[str, Any]], catalog: EventCatalog = NO_JOURNEYS
) -> tuple[list[OutcomeEvent | CustomerEvent], list[EventReject]]:
    """Validated events and, for each invalid one, where and why (first error). Types
    other than outcomes must be ones an active journey reacts to (``catalog``)."""
    good: list[OutcomeEvent | CustomerEvent] = []
    bad: list[EventReject] = []
    for i, item in enumerate(raw):
        try:
            event = _kind(item, catalog).model_validate(item)
            if isinstance(event, CustomerEvent) and (miss := _missing_key(event, catalog)):
                bad.append(miss.model_copy(update={"index": i}))
                continue
            good.append(event)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "event"
            message = str(first["msg"]).removeprefix("Value error, ")
            if where == "event" and ":" in message:
                where, _, message = (part.strip() for part in message.partition(":"))
            bad.append(EventReject(index=i, field=where, reason=message))
        except ValueError as exc:  # an unknown type (see _kind)
            where, _, message = str(exc).partition(": ")
            bad.append(EventReject(index=i, field=where, reason=message))
    return good, bad


def resolve_tokens(
    events: list[OutcomeEvent | CustomerEvent], keys: Keyring
) -> tuple[list[tuple[int, OutcomeEvent | CustomerEvent]], list[EventReject]]:
    """Events with the customer, brand, channel and run their unsubscribe token names."""
    out: list[tuple[int, OutcomeEvent | CustomerEvent]] = []
    bad: list[EventReject] = []
    for i, e in enumerate(events):
        if isinstance(e, CustomerEvent) or e.token is None:
            out.append((i, e))
            continue
        try:
            u = read_token(e.token, keys)
        except (InputError, ValueError) as exc:
            bad.append(EventReject(index=i, field="token", reason=str(exc).removeprefix("token: ")))
            continue
        if e.customer_id is not None and e.customer_id != u.customer_id:
            bad.append(EventReject(index=i, field="customer_id", reason="does not match the token"))
            continue
        out.append(
            (
                i,
                e.model_copy(
                    update={
                        "customer_id": u.customer_id,
                        "brand": u.brand,
                        "channel": Channel(u.channel),
                        "run_id": e.run_id or u.run_id,
                    }
                ),
            )
        )
    return out, bad


def ingest(
    engine: Engine,
    raw: Iterable[Mapping[str, Any]],
    source: str,
    unsubscribe_keys: Keyring,
    clock: Clock = SYSTEM_CLOCK,
    registry: Registry | None = None,
    scope: EventScope | None = None,
) -> IngestResult:
    """Validate, store and act on a batch of events (see the module docstring). With a
    ``registry``, the guardrails of the runs the events touch are evaluated (and may roll
    its aliases back); without one, the events are only stored. With a ``scope`` (the
    brands of the key that posts them), a valid event the key may not post refuses the
    whole batch (ForbiddenError, see :mod:`sluice.feedback.scope`) before anything is
    stored."""
    items = list(raw)
    catalog = journey_catalog(engine)
    good, rejected = parse_events(items, catalog)
    invalid = {r.index for r in rejected}
    index = [i for i in range(len(items)) if i not in invalid]
    resolved, bad_tokens = resolve_tokens(good, unsubscribe_keys)
    rejected += [r.model_copy(update={"index": index[r.index]}) for r in bad_tokens]
    if scope is not None:
        scope.check(engine, [(index[i], e) for i, e in resolved])
    stored = EventStore(engine, clock).add([e for _, e in resolved], source, catalog.types)
    accepted = set(stored.accepted)
    runs = {
        e.run_id
        for _, e in resolved
        if isinstance(e, OutcomeEvent) and e.run_id and e.event_id in accepted
    }
    opened = (
        [i for run_id in sorted(runs) if (i := _check(engine, registry, run_id))]
        if registry is not None
        else []
    )
    return IngestResult(
        accepted=len(stored.accepted),
        duplicates=len(stored.duplicates),
        rejected=sorted(rejected, key=lambda r: r.index),
        suppressions=stored.suppressions,
        incidents=opened,
    )


def _check(engine: Engine, registry: Registry, run_id: str) -> str | None:
    from sluice.feedback.guardrails import evaluate_guardrails
    from sluice.store.runs import Runs

    if Runs(engine).get(run_id) is None:
        return None
    result = evaluate_guardrails(engine, registry, run_id)
    return result.incident.incident_id if result.incident else None


def unsubscribe_event(token: str, occurred_at: str) -> dict[str, Any]:
    """The event a one-click unsubscribe (RFC 8058 POST) stands for; one per token."""
    digest = hashlib.sha256(token.encode()).hexdigest()[:32]
    return {
        "event_id": f"unsubscribe-{digest}",
        "type": EventType.UNSUBSCRIBE.value,
        "token": token,
        "occurred_at": occurred_at,
    }
