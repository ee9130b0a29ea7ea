"""The decision service's HTTP API, independent of how scoring is hosted.

:func:`create_api` builds the FastAPI app around a :class:`DecisionBackend`: the Serve
ingress passes one that calls the Scorer and Decider deployments through handles; the
in-process baseline and Ray-free tests pass one that scores in the same process. Either
way the routes, authentication, validation, error bodies and request ids are the same.

Errors always come back as :class:`ErrorBody` JSON: 401 without a known key, 403 without
the scope, 404 for an alias that is not served, 409 for an alias with no loadable
version, 422 naming every field at fault, 503 while not ready, and 500 with no internals.

An unsubscribe token in a path is a credential: it is never logged. The app's own access
line (DEBUG) carries the path with the token replaced, and a log filter does the
same to what the HTTP server (uvicorn) and Ray Serve log (see
:func:`sluice.serve.events_routes.redact`).
"""

# No ``from __future__ import annotations``: FastAPI reads the route signatures, whose
# body types are created at run time from the feature contract.

import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Protocol

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import Field

from sluice.auth.keys import KeyRecord, KeyStore, Scope
from sluice.contracts._base import Contract
from sluice.contracts.api import (
    Health,
    ModelsResponse,
    ScoredRow,
    ScoreResponse,
    ServedModel,
    decide_request_model,
    score_request_model,
)
from sluice.contracts.decisions import Decision, DecisionContext
from sluice.contracts.feature_contract import FeatureContract
from sluice.errors import InputError, SluiceError, UnavailableError
from sluice.serve.engine import ScoreJob, ScoreOutcome
from sluice.serve.events_routes import add_event_routes, redact, redact_logs
from sluice.serve.journey_routes import add_journey_routes
from sluice.serve.metrics import NoMetrics, ServiceMetrics
from sluice.serve.review_routes import add_review_routes
from sluice.settings import SluiceSettings

log = logging.getLogger("ray.serve.sluice")  # under Serve: JSON, with request ids
ROUTES = frozenset({"/v1/score", "/v1/decide", "/v1/models", "/v1/events", "/healthz", "/readyz"})


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


class DecisionBackend(Protocol):
    default_alias: str

    async def score(self, job: ScoreJob) -> ScoreOutcome: ...

    async def decide(
        self, context: DecisionContext, outcome: ScoreOutcome, decision_id: str
    ) -> Decision: ...

    async def models(self) -> list[ServedModel]: ...

    async def ready(self) -> bool: ...


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (401, 403, 404, 409, 422, 500, 503)
}


def _error(status: int, body: ErrorBody, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        status_code=status, content=body.model_dump(exclude_none=True), headers=headers
    )


class RequestIds:
    """ASGI middleware: a request id per request (``X-Request-Id`` in, or ``fallback()``,
    or a new one), returned in the response header; request metrics per route."""

    def __init__(
        self, app: Any, metrics: ServiceMetrics, fallback: Callable[[], str | None], echo: bool
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.fallback = fallback
        self.echo = echo

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
            self.metrics.request(path if path in ROUTES else "other", status, ms)
            if log.isEnabledFor(logging.DEBUG):
                method = scope.get("method", "")
                log.debug("%s %s %d %.1f ms (request %s)", method, redact(path), status, ms, rid)


def create_api(
    backend: DecisionBackend,
    keys: KeyStore,
    contract: FeatureContract,
    metrics: ServiceMetrics | None = None,
    request_id: Callable[[], str | None] = lambda: None,
    echo_request_id: bool = True,
    settings: SluiceSettings | None = None,
    docs: bool = False,
) -> FastAPI:
    """The FastAPI app of the decision service. ``request_id`` supplies the host's id
    (Serve's); ``echo_request_id`` adds the ``X-Request-Id`` response header (Serve adds
    its own). ``settings`` (built by the caller, the app's edge) say where the review,
    event and suppression stores are and which clock is business time; without them the
    app serves decisions only. ``docs`` serves the interactive documentation (``/docs``,
    ``/redoc``); ``/openapi.json`` is always served (clients and the fuzz test read it)."""
    metrics = metrics or NoMetrics()
    redact_logs()
    # Request bodies are generated from the contract at run time; the routes are declared
    # with ``body: Any`` and get their real annotation before FastAPI reads them.
    score_body = score_request_model(contract)
    decide_body = decide_request_model(contract)
    bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer slk_...`")
    api = FastAPI(
        title="Sluice decision service",
        version="1",
        description=__doc__,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
    )

    Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]

    def require(
        scope: Scope | None,
    ) -> Callable[[HTTPAuthorizationCredentials | None], Awaitable[KeyRecord]]:
        # async: FastAPI runs sync dependencies in a thread pool, a hand-off per request.
        async def check(credentials: Credentials) -> KeyRecord:
            header = f"Bearer {credentials.credentials}" if credentials else None
            return keys.authorize(header, scope) if scope else keys.authenticate(header)

        return check

    ScoreKey = Annotated[KeyRecord, Depends(require(Scope.SCORE))]
    DecideKey = Annotated[KeyRecord, Depends(require(Scope.DECIDE))]
    AnyKey = Annotated[KeyRecord, Depends(require(None))]

    def rid(request: Request) -> str | None:
        return getattr(request.state, "request_id", None)

    @api.exception_handler(SluiceError)
    async def sluice_error(request: Request, exc: SluiceError) -> JSONResponse:
        body = ErrorBody(**exc.to_dict(), request_id=rid(request))
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return _error(exc.status_code, body, headers)

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
            request_id=rid(request),
        )
        return _error(422, body)

    @api.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error (request %s)", rid(request))
        return _error(
            500, ErrorBody(code="internal", message="internal error", request_id=rid(request))
        )

    async def score(body: Any, _: ScoreKey) -> ScoreResponse:
        if body.customer_ids is not None:
            ids = tuple(body.customer_ids)
            job = ScoreJob(None, body.model, ids=ids, at=body.at, allow_stale=body.allow_stale)
        else:
            rows = [r.model_dump() for r in body.rows]
            ids = tuple(r[contract.id_column] for r in rows)
            job = ScoreJob(contract.encode_rows(rows), body.model)
        outcome = (await backend.score(job)).unwrap()
        assert outcome.scores is not None
        stamps = outcome.features_at or (None,) * len(ids)
        stale = outcome.stale or (False,) * len(ids)
        scored = tuple(
            ScoredRow(customer_id=c, score=float(s), features_at=t, stale_features=f)
            for c, s, t, f in zip(ids, outcome.scores, stamps, stale, strict=True)
        )
        return ScoreResponse(
            model_name=outcome.model_name, model_version=outcome.model_version, scores=scored
        )

    async def decide(body: Any, _: DecideKey) -> Decision:
        customer: DecisionContext | None = body.customer
        if body.features is not None:
            assert customer is not None
            features = {**body.features.model_dump(), contract.id_column: customer.customer_id}
            job = ScoreJob(contract.encode_rows([features]), body.model)
        else:
            cid = customer.customer_id if customer is not None else body.customer_id
            at = customer.at if customer is not None else None
            job = ScoreJob(
                None,
                body.model,
                ids=(cid,),
                at=at,
                allow_stale=body.allow_stale,
                return_rows=customer is None,
            )
        outcome = (await backend.score(job)).unwrap()
        if customer is None:
            customer = context_from_features(body.customer_id, outcome.rows[0])
        decision = await backend.decide(customer, outcome, f"dec_{uuid.uuid4().hex}")
        if outcome.features_at:
            decision = decision.model_copy(
                update={"features_at": outcome.features_at[0], "stale_features": outcome.stale[0]}
            )
        metrics.decision(decision.offer_id, decision.channel.value if decision.channel else None)
        log.info(
            json.dumps(
                {
                    "event": "decision",
                    "decision_id": decision.decision_id,
                    "customer_id": decision.customer_id,
                    "offer_id": decision.offer_id,
                    "channel": decision.channel,
                    "score": decision.score,
                    "model_version": decision.model_version,
                    "features_at": (
                        decision.features_at.isoformat() if decision.features_at else None
                    ),
                    "stale_features": decision.stale_features,
                }
            )
        )
        return decision

    score.__annotations__["body"] = score_body
    api.post(
        "/v1/score",
        response_model=ScoreResponse,
        responses=ERRORS,
        summary="Score 1 to 1,000 feature vectors or customer ids",
    )(score)
    decide.__annotations__["body"] = decide_body
    api.post(
        "/v1/decide",
        response_model=Decision,
        responses=ERRORS,
        summary="Choose the next best offer for one customer",
    )(decide)

    @api.get(
        "/v1/models",
        response_model=ModelsResponse,
        responses=ERRORS,
        summary="Models served, their versions and aliases",
    )
    async def models(_: AnyKey) -> ModelsResponse:
        return ModelsResponse(
            default_alias=backend.default_alias, models=tuple(await backend.models())
        )

    @api.get("/healthz", response_model=Health, summary="Liveness")
    async def healthz() -> Health:
        return Health(status="ok")

    @api.get(
        "/readyz",
        response_model=Health,
        responses={503: {"model": ErrorBody}},
        summary="Readiness: the default model is loaded",
    )
    async def readyz() -> Health:
        if not await backend.ready():
            raise UnavailableError("the default model is not loaded yet", field="model")
        return Health(status="ready")

    if settings is not None:
        admin_key = Annotated[KeyRecord, Depends(require(Scope.ADMIN))]
        add_review_routes(api, admin_key, ERRORS, settings)
        events_key = Annotated[KeyRecord, Depends(require(Scope.EVENTS))]
        add_event_routes(api, events_key, ERRORS, settings)
        add_journey_routes(api, events_key, ERRORS, settings)
    api.add_middleware(RequestIds, metrics=metrics, fallback=request_id, echo=echo_request_id)
    return api


def context_from_features(customer_id: str, row: dict[str, Any]) -> DecisionContext:
    """The decision context of a request that gave only a customer id: the country from the
    online features, no consent on record."""
    country = row.get("country")
    if not isinstance(country, str):
        raise InputError(
            f"customer: the online features of {customer_id!r} have no country; give the "
            "customer's decision context",
            field="customer",
        )
    return DecisionContext(customer_id=customer_id, country=country)
