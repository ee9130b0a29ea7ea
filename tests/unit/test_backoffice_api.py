"""The back office as an app of its own: incidents for admins, readiness on the database,
and none of its routes on the decision app (nor the decision routes on it)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from sluice.auth import KeyStore, Scope
from sluice.contracts import PROPENSITY_V1
from sluice.decisioning.catalog import CatalogSource
from sluice.registry import Registry
from sluice.serve.backends import LocalBackend
from sluice.serve.backoffice_api import create_backoffice_api
from sluice.serve.engine import ScoringEngine
from sluice.serve.http import create_api
from sluice.settings import SluiceSettings
from sluice.store import connect
from sluice.store.incidents import Incidents


def test_incidents_are_listed_for_admins_only(db_settings: SluiceSettings) -> None:
    store = KeyStore(db_settings.home_dir / "keys.json")
    admin = {"Authorization": f"Bearer {store.create('admin', (Scope.ADMIN,))[0]}"}
    events = {"Authorization": f"Bearer {store.create('events', (Scope.EVENTS,))[0]}"}
    opened = Incidents(connect(db_settings.effective_database_url)).open(
        "camp", "run-1", "canary", "unsubscribe_rate", {"fired": []}, ["paused the canary arm"]
    )
    client = TestClient(create_backoffice_api(store, db_settings))
    assert client.get("/v1/admin/incidents").status_code == 401
    assert client.get("/v1/admin/incidents", headers=events).status_code == 403
    listed = client.get("/v1/admin/incidents", headers=admin).json()["items"]
    assert [i["incident_id"] for i in listed] == [opened.incident_id]
    assert listed[0]["actions"] == ["paused the canary arm"]
    one = client.get(f"/v1/admin/incidents/{opened.incident_id}", headers=admin)
    assert one.status_code == 200 and one.json()["guardrail"] == "unsubscribe_rate"
    assert client.get("/v1/admin/incidents?status=resolved", headers=admin).json()["items"] == []
    missing = client.get("/v1/admin/incidents/nope", headers=admin)
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    bad = client.get("/v1/admin/incidents?status=closed", headers=admin)
    assert bad.status_code == 422 and bad.json()["field"] == "query.status"


def test_readiness_is_the_database_answering(db_settings: SluiceSettings) -> None:
    store = KeyStore(db_settings.home_dir / "keys.json")
    assert TestClient(create_backoffice_api(store, db_settings)).get("/readyz").json() == {
        "status": "ready",
        "detail": "",
    }
    gone = db_settings.model_copy(update={"database_url": "postgresql://nobody@127.0.0.1:1/x"})
    down = TestClient(create_backoffice_api(store, gone)).get("/readyz")
    assert down.status_code == 503 and down.json()["code"] == "unavailable"
    assert "nobody" not in down.text


def test_the_two_apps_serve_disjoint_routes(fresh_settings: SluiceSettings) -> None:
    store = KeyStore(fresh_settings.home_dir / "keys.json")
    engine = ScoringEngine(["sluice-propensity@champion"], PROPENSITY_V1, Registry(fresh_settings))
    decision = create_api(LocalBackend(engine, CatalogSource.read()), store, PROPENSITY_V1)
    office = create_backoffice_api(store, fresh_settings)
    decision_paths = set(TestClient(decision).get("/openapi.json").json()["paths"])
    office_paths = set(TestClient(office).get("/openapi.json").json()["paths"])
    assert decision_paths & office_paths == {"/healthz", "/readyz"}
    assert {"/v1/score", "/v1/decide", "/v1/models"} <= decision_paths
    assert not any(
        p.startswith(("/v1/events", "/v1/admin", "/v1/unsubscribe")) for p in decision_paths
    )
    assert {"/v1/events", "/v1/admin/reviews", "/v1/admin/incidents"} <= office_paths
