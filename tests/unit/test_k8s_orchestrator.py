"""The orchestrator runs beside the platform on the same database with its event stream
wired, its journey specs validate, and dev's event-stream Redis is wired to it."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from k8s_support import (
    EXTERNAL_SECRETS,
    ORCHESTRATOR,
    ORCHESTRATOR_COMMAND,
    OVERLAYS,
    Doc,
    containers,
    name_of,
    render,
    render_env,
    selects,
)

# What the orchestrator must get from a Secret or ConfigMap, never a literal value.
ORCHESTRATOR_REFERENCED = ("SLUICE_DATABASE_URL", "SLUICE_REDIS_URL", "SLUICE_UNSUBSCRIBE_SECRET")


def _env_sources(container: Mapping[str, Any]) -> dict[str, Any]:
    """name -> the literal value, or ('secret'|'configmap', name, key, optional)."""
    out: dict[str, Any] = {}
    for var in container.get("env") or []:
        source = var.get("valueFrom") or {}
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            out[var["name"]] = ("secret", ref["name"], ref["key"], bool(ref.get("optional")))
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            out[var["name"]] = ("configmap", ref["name"], ref["key"], bool(ref.get("optional")))
        else:
            out[var["name"]] = var.get("value", source or None)
    return out


def _orchestrator(docs: list[Doc]) -> tuple[Doc, dict[str, Any]]:
    found = [d for d in docs if name_of(d) == f"Deployment/{ORCHESTRATOR}"]
    assert len(found) == 1, f"{len(found)} orchestrator Deployments"
    [container] = found[0]["spec"]["template"]["spec"]["containers"]
    return found[0], container


def test_orchestrator_runs_beside_the_platform(env: str) -> None:
    docs = render(OVERLAYS / env)
    deployment, container = _orchestrator(docs)
    spec = deployment["spec"]
    # One at a time: Recreate stops the old pod before the new one starts.
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    assert container["command"] == ORCHESTRATOR_COMMAND, container["command"]
    # The platform's one Sluice image.
    [service] = [d for d in docs if d["kind"] == "RayService"]
    head = service["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    assert container["image"] == head["containers"][0]["image"]
    # Configuration: the database and secrets by reference, the shared settings from sluice-env.
    sources = _env_sources(container)
    for name in ORCHESTRATOR_REFERENCED:
        source = sources.get(name)
        assert isinstance(source, tuple), f"{env}: {name} is {source!r}, not a reference"
        assert source[3] is False, f"{env}: {name} must not be optional"
    literal_secrets = [
        name
        for name, source in sources.items()
        if not isinstance(source, tuple) and re.search(r"SECRET|PASSWORD|TOKEN|_URL$", name)
    ]
    assert not literal_secrets, f"{env}: literal values for {literal_secrets}"
    assert {"configMapRef": {"name": "sluice-env"}} in container.get("envFrom", [])
    # The same ledger as the campaign runs and sluice-batch, the same unsubscribe secret as
    # the campaign runs, the same Redis as the RayService.
    every = render_env(env)
    for doc in every:
        if doc["kind"] not in ("RayJob", "RayCluster"):
            continue
        for where, other in containers(doc):
            theirs = _env_sources(other)
            for name in ("SLUICE_DATABASE_URL", "SLUICE_UNSUBSCRIBE_SECRET"):
                if name in theirs:
                    assert theirs[name] == sources[name], f"{where}: {name} differs"
    redis = sources["SLUICE_REDIS_URL"][:3]
    for where, other in containers(service):
        theirs = _env_sources(other).get("SLUICE_REDIS_URL")
        if where.endswith("initContainer llm-prepare"):
            continue
        assert isinstance(theirs, tuple) and theirs[:3] == redis, f"{where}: SLUICE_REDIS_URL"
    settings = next(d for d in docs if name_of(d) == "ConfigMap/sluice-env")["data"]
    assert settings.get("SLUICE_EVENTS_STREAM"), "sluice-env sets no SLUICE_EVENTS_STREAM"
    # Health: probes on the port --health-port names.
    args = container.get("args") or []
    port = int(args[args.index("--health-port") + 1])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("readinessProbe", "livenessProbe"):
        check = container[probe]["httpGet"]
        assert check["path"] == "/healthz"
        assert ports.get(check["port"], check["port"]) == port, probe
    # SLUICE_HOME: the shared volume of the campaign runs, where the journeys' files are.
    pod = spec["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    home = volumes[mounts[settings["SLUICE_HOME"]]]
    assert home.get("persistentVolumeClaim") == {"claimName": "sluice-shared"}
    assert {"/tmp", "/home/ray/.cache"} <= set(mounts)  # the root filesystem is read-only
    # Its own service account, without a token: it calls no Kubernetes API.
    [account] = [d for d in docs if name_of(d) == f"ServiceAccount/{pod['serviceAccountName']}"]
    assert account.get("automountServiceAccountToken") is False
    assert pod.get("automountServiceAccountToken") is False


def test_orchestrator_journey_specs_validate(env: str) -> None:
    journey = pytest.importorskip("sluice.contracts.journey", reason="no journey contract yet")
    docs = render(OVERLAYS / env)
    deployment, container = _orchestrator(docs)
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == "/etc/sluice/journeys"]
    assert mount.get("readOnly") is True and "subPath" not in mount
    name = volumes[mount["name"]]["configMap"]["name"]
    [configmap] = [d for d in docs if name_of(d) == f"ConfigMap/{name}"]
    assert configmap["data"], f"{env}: no journey spec in {name}"
    for key, text in configmap["data"].items():
        spec = journey.JourneySpec.model_validate(yaml.safe_load(text))
        assert key == f"{spec.journey_id}.yaml", key
        assert str(spec.customers).startswith("${SLUICE_HOME}/"), key  # on the shared volume
        if env == "dev":  # no SMTP relay in dev
            assert all(c.transport == "outbox" for c in spec.channels.values()), key


def test_dev_event_stream_redis(env: str) -> None:
    docs = render(OVERLAYS / env)
    redis_services = [
        d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "redis"
    ]
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    if env != "dev":
        # Production's Redis is its own (README.md): the URL comes from the external Secret.
        assert not redis_services and "sluice-redis" not in secrets
        assert "url" in EXTERNAL_SECRETS[env]["sluice-redis"]
        return
    [service] = redis_services
    [port] = service["spec"]["ports"]
    assert port["port"] == 6379
    workloads = [
        d
        for d in docs
        if d["kind"] in ("Deployment", "StatefulSet")
        and selects(service["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])
    ]
    assert [name_of(d) for d in workloads] == ["Deployment/redis"]
    [redis] = workloads[0]["spec"]["template"]["spec"]["containers"]
    assert redis["image"].startswith("redis:7")
    assert port["targetPort"] in {p.get("name") for p in redis["ports"]} | {6379}
    # The URL the orchestrator and the RayService read names this Service and its password.
    data = {k: base64.b64decode(v).decode() for k, v in secrets["sluice-redis"]["data"].items()}
    url = urlsplit(data["url"])
    assert url.scheme == "redis" and url.hostname == "redis" and url.port == 6379
    assert url.password == data["password"]
