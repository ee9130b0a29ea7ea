"""The back office's HTTP API: reviews, events, unsubscribes, journey entries, incidents.

A Serve application of its own (``sluice.serve.app:build_backoffice_app``, route prefix
``/backoffice`` in ``deployments/decision.yaml``), with its own replicas and autoscaling,
so that nothing here runs on the replicas that answer decisions. Requests read and write
the shared database and answer at once; the heavy work they trigger is the
orchestrator's: an approved review item is delivered by it (202 and a status URL), and
the guardrails of runs that receive events are evaluated on its timer.

Routes (paths below the app's prefix):

- ``GET /v1/admin/reviews``, ``GET /v1/admin/reviews/{id}``, ``POST .../approve`` (202),
  ``POST .../reject`` (``admin``)
- ``GET /v1/admin/incidents``, ``GET /v1/admin/incidents/{id}`` (``admin``)
- ``POST /v1/events`` (``events``; a brand-limited key only its brands')
- ``POST /v1/journeys/{journey_id}/entries`` (``events``)
- ``GET`` and ``POST /v1/unsubscribe/{token}`` (the token is the credential)
- ``GET /healthz``, ``GET /readyz`` (the database answers)
"""

# No ``from __future__ import annotations``: FastAPI reads the route signatures.

from collections.abc import Callable
from typing import Any, Literal

from fastapi import FastAPI, Query
from opentelemetry.trace import Tracer

from sluice.auth.keys import KeyStore, Scope
from sluice.contracts._base import Contract
from sluice.contracts.api import Health
from sluice.contracts.feedback import Incident
from sluice.errors import UnavailableError
from sluice.serve.api_base import ERRORS, ErrorBody, KeyChecks, new_api, wrap_requests
from sluice.serve.events_routes import add_event_routes, redact_logs
from sluice.serve.journey_routes import add_journey_routes
from sluice.serve.metrics import ServiceMetrics
from sluice.serve.review_routes import add_review_routes
from sluice.settings import SluiceSettings

ROUTES = frozenset({"/v1/events", "/v1/admin/reviews", "/v1/admin/incidents", "/healthz"})


class IncidentList(Contract):
    items: tuple[Incident, ...]


def add_incident_routes(
    api: FastAPI, admin_key: Any, errors: dict[int | str, Any], settings: SluiceSettings
) -> None:
    from sluice.store.db import connect
    from sluice.store.incidents import Incidents

    url, clock = settings.effective_database_url, settings.clock

    def list_incidents(
        _: admin_key,
        campaign: str | None = None,
        status: Literal["open", "resolved", "all"] = "open",
        limit: int = Query(default=100, ge=1, le=1000),
    ) -> IncidentList:
        found = Incidents(connect(url), clock).list(campaign, None if status == "all" else status)
        return IncidentList(items=tuple(found[:limit]))

    def get_incident(incident_id: str, _: admin_key) -> Incident:
        return Incidents(connect(url), clock).get(incident_id)

    api.get(
        "/v1/admin/incidents",
        response_model=IncidentList,
        responses=errors,
        summary="Incidents opened by guardrails",
    )(list_incidents)
    api.get(
        "/v1/admin/incidents/{incident_id}",
        response_model=Incident,
        responses=errors,
        summary="One incident: the evidence and what was done",
    )(get_incident)


def create_backoffice_api(
    keys: KeyStore,
    settings: SluiceSettings,
    metrics: ServiceMetrics | None = None,
    request_id: Callable[[], str | None] = lambda: None,
    echo_request_id: bool = True,
    docs: bool = False,
    tracer: Tracer | None = None,
) -> FastAPI:
    """The back office's FastAPI app; ``settings`` (built by the caller, the app's edge)
    say where the database and the unsubscribe key are and which clock is business time."""
    redact_logs()
    api = new_api("Sluice back office", __doc__, docs)
    checks = KeyChecks(keys)
    admin_key = checks.require(Scope.ADMIN)
    events_key = checks.require(Scope.EVENTS)
    add_review_routes(api, admin_key, ERRORS, settings)
    add_incident_routes(api, admin_key, ERRORS, settings)
    add_event_routes(api, events_key, ERRORS, settings)
    add_journey_routes(api, events_key, ERRORS, settings)
    url = settings.effective_database_url

    @api.get("/healthz", response_model=Health, summary="Liveness")
    async def healthz() -> Health:
        return Health(status="ok")

    @api.get(
        "/readyz",
        response_model=Health,
        responses={503: {"model": ErrorBody}},
        summary="Readiness: the database answers",
    )
    def readyz() -> Health:
        from sluice.store.db import answers

        why = answers(url)
        if why is not None:
            raise UnavailableError(f"the database does not answer: {why}")
        return Health(status="ready")

    wrap_requests(api, "sluice-backoffice", ROUTES, metrics, request_id, echo_request_id, tracer)
    return api


__all__ = ["IncidentList", "add_incident_routes", "create_backoffice_api"]
