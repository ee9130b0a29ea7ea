"""Outcome events into the decision service: ``POST /v1/events`` (``events`` scope) and
the one-click unsubscribe target ``POST /v1/unsubscribe/{token}`` (RFC 8058; the signed
token is the credential, so mail providers need no API key, and is never logged:
:func:`redact_logs` filters it out of what the HTTP server, Serve and the app log).

Handlers are synchronous (database writes): FastAPI runs them in its thread pool.
"""

# No ``from __future__ import annotations``: FastAPI reads the route signatures.

import logging
import re
from typing import Annotated, Any

from fastapi import FastAPI, Path
from pydantic import Field

from sluice.contracts._base import Contract
from sluice.contracts.feedback import IngestResult
from sluice.errors import NotFoundError
from sluice.settings import SluiceSettings

GUARDRAIL_CHECK_EVERY_S = 5.0
"""A run's guardrails are evaluated at most this often from the events route."""
TOKEN_PATTERN = r"^(?:[A-Za-z0-9]{1,16}\.)?[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"
"""``<kid>.<body>.<mac>``; a token of the old format (no key id) gets as far as
:func:`sluice.channels.unsubscribe.read_token`, which refuses it (404, field ``token``).
The token never appears in a log: see :func:`redact`."""

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


class Unsubscribed(Contract):
    unsubscribed: bool
    duplicate: bool


def add_event_routes(
    api: FastAPI, events_key: Any, errors: dict[int | str, Any], settings: SluiceSettings
) -> None:
    from sluice.channels.unsubscribe import secret
    from sluice.feedback.ingest import ingest, unsubscribe_event
    from sluice.registry.registry import Registry
    from sluice.store.db import connect

    clock, url, home = settings.clock, settings.effective_database_url, settings.home_dir
    registry = Registry(settings)  # a fired guardrail may roll an alias back

    def post_events(body: RawEvents, _: events_key) -> IngestResult:
        return ingest(
            connect(url),
            body.events,
            "api",
            secret(home),
            check_every_s=GUARDRAIL_CHECK_EVERY_S,
            clock=clock,
            registry=registry,
        )

    def one_click_unsubscribe(
        token: Annotated[str, Path(max_length=1024, pattern=TOKEN_PATTERN)],
    ) -> Unsubscribed:
        event = unsubscribe_event(token, clock.now().isoformat())
        result = ingest(
            connect(url),
            [event],
            "one-click",
            secret(home),
            GUARDRAIL_CHECK_EVERY_S,
            clock,
            registry,
        )
        if result.rejected:  # a link that was never issued (or a forged one)
            first = result.rejected[0]
            raise NotFoundError(f"token: {first.reason}", field=first.field)
        return Unsubscribed(unsubscribed=True, duplicate=result.duplicates > 0)

    api.post(
        "/v1/events",
        response_model=IngestResult,
        responses=errors,
        summary="Outcome events: validated one by one, deduplicated by event id",
    )(post_events)
    api.post(
        "/v1/unsubscribe/{token}",
        response_model=Unsubscribed,
        responses=errors,
        summary="One-click unsubscribe (RFC 8058): suppresses at once",
    )(one_click_unsubscribe)
