"""Unsubscribe links from delivered messages: ``GET`` and ``POST /v1/unsubscribe/{token}``.

The signed token is the credential (mail providers and readers have no API key) and is
never logged (see :func:`sluice.serve.events_routes.redact`). It names a customer, a
brand, a channel and a run; the suppression it creates is for that brand and channel.

* ``GET`` shows a confirmation page (HTML, see :mod:`sluice.serve.unsubscribe_page`)
  and changes nothing: link scanners and previews fetch GETs. A token that is not valid
  gets an HTML page with status 404, and 503 while the keyring cannot be read.
* ``POST`` unsubscribes. A mail client's RFC 8058 one-click POST
  (``List-Unsubscribe=One-Click``, or any other body) gets JSON, as always: 200
  ``{"unsubscribed": true, "duplicate": ...}``, 404 for a token never issued, 422 for
  one that is malformed. The confirmation page's form (``confirm=unsubscribe``) gets an
  HTML page instead.

Handlers that write are synchronous (database writes): FastAPI runs them in its thread
pool.
"""

# No ``from __future__ import annotations``: FastAPI reads the route signatures.

import logging
import re
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import Depends, FastAPI, Path, Request
from fastapi.responses import HTMLResponse

from sluice.contracts._base import Contract
from sluice.errors import ConfigError, InputError, NotFoundError
from sluice.serve import unsubscribe_page as page
from sluice.settings import SluiceSettings

log = logging.getLogger("ray.serve.sluice")
TOKEN_PATTERN = r"^(?:[A-Za-z0-9]{1,16}\.)?[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"
"""``<kid>.<body>.<mac>``; a token of the old format (no key id) gets as far as
:func:`sluice.channels.unsubscribe.read_token`, which refuses it (404, field ``token``)."""
MAX_TOKEN = 1024
MAX_FORM_BYTES = 4096
"""A body longer than this is not the confirmation form (the one-click JSON answer)."""
HTML_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "Not a valid unsubscribe link", "content": {"text/html": {}}},
    503: {"description": "Links cannot be checked now", "content": {"text/html": {}}},
}


class Unsubscribed(Contract):
    unsubscribed: bool
    duplicate: bool


async def from_the_form(request: Request) -> bool:
    """Whether a POST comes from the confirmation page's form (``confirm=unsubscribe``,
    form-encoded) rather than from a mail client's one-click."""
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return False
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return False
    fields = parse_qs(body.decode("latin-1"))
    return fields.get(page.CONFIRM_FIELD) == [page.CONFIRM_VALUE]


def add_unsubscribe_routes(
    api: FastAPI, errors: dict[int | str, Any], settings: SluiceSettings
) -> None:
    from sluice.channels.unsubscribe import Keyring, Unsubscribe, read_token, secret
    from sluice.feedback.ingest import ingest, unsubscribe_event
    from sluice.store.db import connect

    clock, url, home = settings.clock, settings.effective_database_url, settings.home_dir

    def keyring() -> Keyring | None:
        try:
            return secret(home)
        except ConfigError as exc:
            log.error("unsubscribe keyring: %s", exc.message)
            return None

    def verified(token: str, keys: Keyring) -> Unsubscribe | None:
        if len(token) > MAX_TOKEN or not re.fullmatch(TOKEN_PATTERN, token):
            return None
        try:
            return read_token(token, keys)
        except InputError:
            return None

    def confirmation_page(token: Annotated[str, Path()]) -> HTMLResponse:
        keys = keyring()
        if keys is None:
            return page.unavailable()
        u = verified(token, keys)
        return page.invalid() if u is None else page.confirm(u)

    def unsubscribe(
        token: Annotated[str, Path(max_length=MAX_TOKEN, pattern=TOKEN_PATTERN)],
        form: Annotated[bool, Depends(from_the_form)],
    ) -> Any:
        keys = keyring() if form else secret(home)
        if keys is None:
            return page.unavailable()
        u = verified(token, keys) if form else None
        if form and u is None:
            return page.invalid()
        event = unsubscribe_event(token, clock.now().isoformat())
        result = ingest(connect(url), [event], "one-click", keys, clock=clock)
        if result.rejected:  # a link that was never issued (or a forged one)
            if form:
                return page.invalid()
            first = result.rejected[0]
            raise NotFoundError(f"token: {first.reason}", field=first.field)
        if u is not None:
            return page.done(u, duplicate=result.duplicates > 0)
        return Unsubscribed(unsubscribed=True, duplicate=result.duplicates > 0)

    api.get(
        "/v1/unsubscribe/{token}",
        response_class=HTMLResponse,
        responses=HTML_ERRORS,
        summary="The page an unsubscribe link opens: confirm with a button (changes nothing)",
    )(confirmation_page)
    api.post(
        "/v1/unsubscribe/{token}",
        response_model=Unsubscribed,
        responses={
            **errors,
            **{
                status: {**errors.get(status, {}), **HTML_ERRORS.get(status, {})}
                for status in (404, 503)
            },
            200: {"content": {"text/html": {}}},
        },
        summary="Unsubscribe: RFC 8058 one-click (JSON) or the confirmation form (HTML)",
    )(unsubscribe)
