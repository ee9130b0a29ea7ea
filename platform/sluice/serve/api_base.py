"""What both HTTP apps share: the error body, key checks, request ids and metrics.

The decision app (:mod:`sluice.serve.http`) and the back office
(:mod:`sluice.serve.backoffice_api`) answer errors the same way: :class:`ErrorBody`
JSON, 401 without a known key, 403 without the scope, 404, 409, 422 naming every field
at fault, 503 while not ready, and 500 with no internals.
"""

# No ``from __future__ import annotations``: FastAPI reads the dependency signatures.

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from opentelemetry.trace import Tracer
from pydantic import Field

from sluice.auth.keys import KeyRecord, KeyStore, Scope
from sluice.contracts._base import Contract
from sluice.errors import SluiceError
from sluice.serve.events_routes import redact
from sluice.serve.metrics import NoMetrics, ServiceMetrics
from sluice.serve.tracing import TraceContext, provider

log = logging.getLogger("ray.serve.sluice")  # under Serve: JSON, with request ids


class ErrorItem(Contract):
    field: str
    reason: str


class ErrorBody(Contract):
    """Every error response."""

    code: str
    message: str
    field: str | None = None
    detail: dict[str, Any] | None = None
    errors: list[ErrorItem] | None = Field(default=None, description="Every field at fault (422).")
    request_id: str | None = None


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (401, 403, 404, 409, 422, 500, 503)
}


def error_response(
    status: int, body: ErrorBody, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        status_code=status, content=body.model_dump(exclude_none=True), headers=headers
    )


def request_id_of(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def new_api(title: str, description: str | None, docs: bool) -> FastAPI:
    """A FastAPI app answering errors as :class:`ErrorBody`; ``docs`` serves ``/docs``
    and ``/redoc`` (``/openapi.json`` is always served)."""
    api = FastAPI(
        title=title,
        version="1",
        description=description or "",
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
    )
    install_error_handlers(api)
    return api


def wrap_requests(
    api: FastAPI,
    service: str,
    routes: frozenset[str],
    metrics: ServiceMetrics | None,
    request_id: Callable[[], str | None],
    echo_request_id: bool,
    tracer: Tracer | None,
) -> None:
    """Request ids and metrics (:class:`RequestIds`, outermost), then a server span per
    request in ``service``'s trace provider unless ``tracer`` is given
    (:class:`~sluice.serve.tracing.TraceContext`)."""
    api.add_middleware(TraceContext, tracer=tracer or provider(service).get_tracer(service))
    api.add_middleware(
        RequestIds,
        metrics=metrics or NoMetrics(),
        fallback=request_id,
        echo=echo_request_id,
        routes=routes,
    )


def install_error_handlers(api: FastAPI) -> None:
    """:class:`ErrorBody` for Sluice errors, invalid input (every field) and the rest."""

    @api.exception_handler(SluiceError)
    async def sluice_error(request: Request, exc: SluiceError) -> JSONResponse:
        body = ErrorBody(**exc.to_dict(), request_id=request_id_of(request))
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return error_response(exc.status_code, body, headers)

    @api.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        items = [
            ErrorItem(
                field=".".join(str(p) for p in e["loc"] if p != "body") or "body",
                reason=str(e["msg"]),
            )
            for e in exc.errors()
        ]
        first = items[0] if items else ErrorItem(field="body", reason="invalid")
        body = ErrorBody(
            code="invalid_input",
            message=f"{first.field}: {first.reason}",
            field=first.field,
            errors=items,
            request_id=request_id_of(request),
        )
        return error_response(422, body)

    @api.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        rid = request_id_of(request)
        log.exception("unhandled error (request %s)", rid)
        body = ErrorBody(code="internal", message="internal error", request_id=rid)
        return error_response(500, body)


class KeyChecks:
    """FastAPI dependencies that authenticate a bearer key and check its scope. The keys
    file is re-read when it changes, so a revocation applies without a restart."""

    def __init__(self, keys: KeyStore) -> None:
        self.keys = keys
        self.bearer = HTTPBearer(
            auto_error=False, description="An API key: `Authorization: Bearer slk_...`"
        )

    def dependency(self, scope: Scope | None) -> Callable[..., Awaitable[KeyRecord]]:
        """The dependency that checks a request's key for ``scope`` (None: any known key)."""
        keys = self.keys
        Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(self.bearer)]

        # async: FastAPI runs sync dependencies in a thread pool, a hand-off per request.
        async def check(credentials: Credentials) -> KeyRecord:
            header = f"Bearer {credentials.credentials}" if credentials else None
            return keys.authorize(header, scope) if scope else keys.authenticate(header)

        return check

    def require(self, scope: Scope | None) -> Any:
        """``Annotated[KeyRecord, Depends(...)]`` for ``scope``, to annotate a parameter."""
        return Annotated[KeyRecord, Depends(self.dependency(scope))]


class RequestIds:
    """ASGI middleware: a request id per request (``X-Request-Id`` in, or ``fallback()``,
    or a new one), returned in the response header; request metrics per route (paths not
    in ``routes`` count as ``other``)."""

    def __init__(
        self,
        app: Any,
        metrics: ServiceMetrics,
        fallback: Callable[[], str | None],
        echo: bool,
        routes: frozenset[str],
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.fallback = fallback
        self.echo = echo
        self.routes = routes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = (
            given
            if 0 < len(given) <= 64 and given.replace("-", "").replace("_", "").isalnum()
            else (self.fallback() or uuid.uuid4().hex)
        )
        scope.setdefault("state", {})["request_id"] = rid
        status = 500

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if self.echo:
                    message["headers"] = [
                        *message.get("headers", []),
                        (b"x-request-id", rid.encode()),
                    ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            path = scope.get("path", "")
            ms = (time.perf_counter() - started) * 1000
            self.metrics.request(path if path in self.routes else "other", status, ms)
            if log.isEnabledFor(logging.DEBUG):
                method = scope.get("method", "")
                log.debug("%s %s %d %.1f ms (request %s)", method, redact(path), status, ms, rid)


__all__ = [
    "ERRORS",
    "ErrorBody",
    "ErrorItem",
    "KeyChecks",
    "RequestIds",
    "error_response",
    "install_error_handlers",
    "new_api",
    "request_id_of",
    "wrap_requests",
]
