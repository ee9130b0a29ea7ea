"""The LLM app behind API keys: every OpenAI route of the ingress asks for a key with the
``llm`` scope from the decision service's key store (no Ray started: the routes are
mounted on a plain FastAPI app)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from ray.llm._internal.serve.core.ingress.ingress import DEFAULT_ENDPOINTS

from sluice.auth.keys import KeyStore, Scope
from sluice.generation.llm_app import LLMAppArgs, openai_builder
from sluice.generation.llm_auth import KeyedOpenAiIngress, _keyed


class Toy:
    """Routes shaped like the ingress's: one without a request, one with."""

    async def models(self) -> dict[str, Any]:
        return {"data": [{"id": "m"}]}

    async def chat(self, body: dict[str, Any], request: Request) -> dict[str, Any]:
        return {"echo": body}


@pytest.fixture
def keys(tmp_path: Path) -> tuple[TestClient, dict[str, str]]:
    store = KeyStore(tmp_path / "api-keys.json")
    made = {
        "llm": store.create("copy", (Scope.LLM,))[0],
        "admin": store.create("ops", (Scope.ADMIN,))[0],
        "decide": store.create("web", (Scope.DECIDE,))[0],
        "revoked": store.create("old", (Scope.LLM,))[0],
    }
    store.revoke("old")
    keyed = type("Keyed", (Toy,), {"models": _keyed(Toy.models), "chat": _keyed(Toy.chat)})
    ingress = keyed()
    ingress._sluice_keys = KeyStore(tmp_path / "api-keys.json")
    app = FastAPI()
    app.get("/v1/models")(ingress.models)
    app.post("/v1/chat/completions")(ingress.chat)
    return TestClient(app), made


def test_every_route_needs_a_key_with_the_llm_scope(
    keys: tuple[TestClient, dict[str, str]],
) -> None:
    client, made = keys

    def status(method: str, path: str, key: str | None) -> int:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        body = {"messages": []} if method == "post" else None
        return client.request(method, path, json=body, headers=headers).status_code

    for method, path in (("get", "/v1/models"), ("post", "/v1/chat/completions")):
        assert status(method, path, None) == 401
        assert status(method, path, "slk_nope_nope") == 401
        assert status(method, path, made["revoked"]) == 401
        assert status(method, path, made["decide"]) == 403
        assert status(method, path, made["llm"]) == 200
        assert status(method, path, made["admin"]) == 200
    reply = client.post(
        "/v1/chat/completions",
        json={"messages": [1]},
        headers={"Authorization": f"Bearer {made['llm']}"},
    )
    assert reply.json() == {"echo": {"messages": [1]}}
    refused = client.get("/v1/models", headers={"Authorization": f"Bearer {made['decide']}"})
    assert made["decide"] not in refused.text and "llm" in refused.text


def test_the_ingress_wraps_every_openai_route() -> None:
    for name in DEFAULT_ENDPOINTS:
        route = getattr(KeyedOpenAiIngress, name)
        assert route.__wrapped__ is not None, name
        params = inspect.signature(route).parameters.values()
        assert any(p.annotation is Request for p in params), name


def test_the_builder_puts_the_keyed_ingress_in_front_only_when_asked(tmp_path: Path) -> None:
    model = tmp_path / "models" / "m"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    common = {"model_source": str(model), "placement_group_config": {"bundles": [{"CPU": 1}]}}
    assert "ingress_cls_config" not in openai_builder(LLMAppArgs(**common))
    keyed = openai_builder(
        LLMAppArgs(**common, require_api_key=True, api_keys_file=str(tmp_path / "k.json"))
    )
    assert keyed["ingress_cls_config"] == {
        "ingress_cls": KeyedOpenAiIngress,
        "ingress_extra_kwargs": {"api_keys_file": str(tmp_path / "k.json")},
    }
    # Without a file of its own, the keys of the app's Sluice home.
    home = openai_builder(
        LLMAppArgs(**common, require_api_key=True, sluice_home=str(tmp_path / "home"))
    )
    assert home["ingress_cls_config"]["ingress_extra_kwargs"] == {
        "api_keys_file": str((tmp_path / "home" / "api-keys.json").resolve())
    }
