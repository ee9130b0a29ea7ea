"""The decision service's HTTP API: ``/v1/score``, ``/v1/decide``, ``/v1/models``.

:func:`create_api` builds the FastAPI app around a :class:`DecisionBackend` that scores
and decides in the API's own process: the Serve deployment
(:class:`sluice.serve.deployments.Decisions`), the one-process baseline of ``sluice bench
online`` and Ray-free tests all run this same app. Reviews, events, unsubscribes and
incidents are the back office's (:mod:`sluice.serve.backoffice_api`), a Serve app of its
own, so nothing heavy runs on the replicas that answer decisions.

Errors always come back as :class:`~sluice.serve.api_base.ErrorBody` JSON: 401 without
a known key, 403 without the scope, 404 for an alias that is not served, 409 for an
alias with no loadable version, 422 naming every field at fault, 503 while not ready,
and 500 with no internals.
"""

# No ``from __future__ import annotations``: FastAPI reads the route signatures, whose
# body types are created at run time from the feature contract.

import json
import logging
import uuid
from collections.abc import Callable
from typing import Annotated, Any, Protocol

from fastapi import Depends, FastAPI, Request
from opentelemetry.trace import Tracer

from sluice.auth.keys import KeyRecord, KeyStore, Scope
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
from sluice.errors import InputError, UnavailableError
from sluice.serve.api_base import ERRORS, ErrorBody, KeyChecks, new_api, wrap_requests
from sluice.serve.engine import ScoreJob, ScoreOutcome
from sluice.serve.metrics import NoMetrics, ServiceMetrics

log = logging.getLogger("ray.serve.sluice")  # under Serve: JSON, with request ids
ROUTES = frozenset({"/v1/score", "/v1/decide", "/v1/models", "/healthz", "/readyz"})


class DecisionBackend(Protocol):
    default_alias: str

    async def score(self, job: ScoreJob) -> ScoreOutcome: ...

    async def decide(
        self, context: DecisionContext, outcome: ScoreOutcome, decision_id: str
    ) -> Decision: ...

    async def models(self) -> list[ServedModel]: ...

    async def ready(self) -> bool: ...


def create_api(
    backend: DecisionBackend,
    keys: KeyStore,
    contract: FeatureContract,
    metrics: ServiceMetrics | None = None,
    request_id: Callable[[], str | None] = lambda: None,
    echo_request_id: bool = True,
    docs: bool = False,
    tracer: Tracer | None = None,
) -> FastAPI:
    """The FastAPI app of the decision service. ``request_id`` supplies the host's id
    (Serve's); ``echo_request_id`` adds the ``X-Request-Id`` response header (Serve adds
    its own). ``docs`` serves the interactive documentation (``/docs``, ``/redoc``);
    ``/openapi.json`` is always served (clients and the fuzz test read it). ``tracer``:
    where request spans go (default: this process's, see :mod:`sluice.serve.tracing`)."""
    metrics = metrics or NoMetrics()
    # Request bodies are generated from the contract at run time; the routes are declared
    # with ``body: Any`` and get their real annotation before FastAPI reads them.
    score_body = score_request_model(contract)
    decide_body = decide_request_model(contract)
    api = new_api("Sluice decision service", __doc__, docs)
    checks = KeyChecks(keys)
    ScoreKey = Annotated[KeyRecord, Depends(checks.dependency(Scope.SCORE))]
    DecideKey = Annotated[KeyRecord, Depends(checks.dependency(Scope.DECIDE))]
    AnyKey = Annotated[KeyRecord, Depends(checks.dependency(None))]

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

    async def decide(body: Any, _: DecideKey, request: Request) -> Decision:
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
        update: dict[str, Any] = {"trace_id": getattr(request.state, "trace_id", None)}
        if outcome.features_at:
            update.update(features_at=outcome.features_at[0], stale_features=outcome.stale[0])
        decision = decision.model_copy(update=update)
        metrics.decision(decision.offer_id, decision.channel.value if decision.channel else None)
        log.info(
            json.dumps(
                {
                    "event": "decision",
                    "decision_id": decision.decision_id,
                    "trace_id": decision.trace_id,
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

    wrap_requests(api, "sluice-decision", ROUTES, metrics, request_id, echo_request_id, tracer)
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
