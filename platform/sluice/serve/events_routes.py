"""Outcome events into the decision service: ``POST /v1/events`` (``events`` scope; a
key limited to brands may post only its brands' events, see
:mod:`sluice.feedback.scope`), and the unsubscribe links of delivered messages (see
:mod:`sluice.serve.unsubscribe_routes`), whose tokens are credentials and never logged:
:func:`redact_logs` filters them out of what the HTTP server, Serve and the app log.

Handlers are synchronous (database writes): FastAPI runs them in its thread pool. The
route stores events and acts on nothing heavier: the guardrails of the runs they touch
are evaluated by the orchestrator on its timer (``sluice orchestrator run``), which may
pause an arm and roll a model alias back.
"""

# No ``from __future__ import annotations``: FastAPI reads the route signatures.

import logging
import re
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from pydantic import Field

from sluice.auth.keys import KeyRecord, Scope
from sluice.contracts._base import Contract
from sluice.contracts.feedback import IngestResult
from sluice.serve.unsubscribe_routes import add_unsubscribe_routes
from sluice.settings import SluiceSettings

if TYPE_CHECKING:
    from sluice.feedback.scope import EventScope

_TOKEN_IN_PATH = re.compile(r"(/v1/unsubscribe/)[^\s\"'?#/]+")
REDACTED_LOGGERS = ("uvicorn.access", "uvicorn.error", "ray.serve", "ray.serve.sluice")
"""Loggers that write request paths: the HTTP server's, Serve's (access lines), ours."""


def redact(text: str) -> str:
    """``text`` with the token of every one-click unsubscribe path replaced."""
    return _TOKEN_IN_PATH.sub(r"\1<redacted>", text)


class RedactTokens(logging.Filter):
    """Redacts unsubscribe tokens in a record's message, arguments and traceback (the
    arguments keep their shape: uvicorn's access formatter unpacks them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {
                k: redact(a) if isinstance(a, str) else a for k, a in record.args.items()
            }
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def redact_logs() -> None:
    """Installs :class:`RedactTokens` on :data:`REDACTED_LOGGERS` (once)."""
    for name in REDACTED_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())


class RawEvents(Contract):
    """Each event is validated on its own: bad ones come back in ``rejected``."""

    events: list[dict[str, Any]] = Field(min_length=1, max_length=10_000)


def add_event_routes(
    api: FastAPI, events_key: Any, errors: dict[int | str, Any], settings: SluiceSettings
) -> None:
    """``POST /v1/events``, then the unsubscribe routes."""
    from sluice.channels.unsubscribe import secret
    from sluice.feedback.ingest import ingest
    from sluice.store.db import connect

    clock, url, home = settings.clock, settings.effective_database_url, settings.home_dir

    def post_events(body: RawEvents, key: events_key) -> IngestResult:
        return ingest(
            connect(url),
            body.events,
            "api",
            secret(home),
            clock=clock,
            scope=event_scope(key),
        )

    api.post(
        "/v1/events",
        response_model=IngestResult,
        responses=errors,
        summary="Outcome events: validated one by one, deduplicated by event id",
    )(post_events)
    add_unsubscribe_routes(api, errors, settings)


def event_scope(key: KeyRecord) -> "EventScope":
    """What ``key`` may post: its brands (every brand when it has none), and a
    suppression for all brands only with ``admin``."""
    from sluice.feedback.scope import EventScope

    admin = Scope.ADMIN in key.scopes
    limited = key.brands is not None and not admin
    return EventScope(key.name, frozenset(key.brands or ()) if limited else None, admin)
