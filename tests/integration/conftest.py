"""Integration tier: one local Ray cluster and one registered model per session."""

from __future__ import annotations

import random
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from sluice.registry import Registry, VersionInfo
from sluice.settings import SluiceSettings
from sluice.training import TrainedModel

SMTP_PASSWORD_ENV = "SLUICE_IT_SMTP_PASSWORD"
SMTP_PASSWORD = secrets.token_urlsafe(16)
"""The password of the authenticating relay in the campaign tests."""


@pytest.fixture(scope="session")
def relay_password() -> tuple[str, str]:
    """(variable, password) of the authenticating relay, as the cluster's workers see it."""
    return SMTP_PASSWORD_ENV, SMTP_PASSWORD


def free_port() -> int:
    """A free port that nothing else on this machine is handed while the session runs.

    The session's listeners (HAProxy's side ports, Serve's HTTP port, the metrics
    exporter) bind long after this returns. A port from the kernel's ephemeral range
    could meanwhile go to any outgoing connection, and Ray's workers take ports from
    10002-19999, so the port is drawn from between the two and checked on every address.
    """
    ephemeral = Path("/proc/sys/net/ipv4/ip_local_port_range")
    low = int(ephemeral.read_text().split()[0]) if ephemeral.exists() else 32768
    top = min(low, 32768) if low > 21000 else 32768
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(20000, top)
        try:
            for host in ("0.0.0.0", "127.0.0.1"):
                with socket.socket() as s:
                    s.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port between 20000 and the ephemeral range")


@pytest.fixture(scope="session")
def metrics_port() -> int:
    """Where the session cluster exports its Prometheus metrics."""
    return free_port()


@pytest.fixture(scope="session", autouse=True)
def ray_cluster(session_home: Path, metrics_port: int) -> Iterator[None]:
    """A local cluster with more logical CPUs than cores: Serve, Ray Data and the LLM
    replica share it. Serve runs its fast path (HAProxy), as `sluice serve` does, with
    HAProxy's side ports moved off their fixed defaults so that a Serve instance already
    running on this machine cannot collide with the tests."""
    import ray

    from sluice.runtime import ensure_ray
    from sluice.serve.launcher import fast_path_env

    env = {
        **fast_path_env(),
        # The fast path buffers replica logs 1,000 records at a time; tests read them at once.
        "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE": "1",
        # An ingress replica that stops waits this long for external load balancers to
        # let it go (30 s by default, per app deleted); the session's own HAProxy does at once.
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "1",
        "RAY_SERVE_HAPROXY_STATS_PORT": str(free_port()),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(free_port()),
        # The workers' environment, as a pod's spec gives it: the session's home for what
        # runs in the cluster (Serve app builders, replicas), and the relay password that
        # authenticated-SMTP campaigns read where they deliver (never from a spec).
        "SLUICE_HOME": str(session_home),
        SMTP_PASSWORD_ENV: SMTP_PASSWORD,
    }
    ensure_ray(
        num_cpus=8,
        namespace="serve",
        _metrics_export_port=metrics_port,
        runtime_env={"env_vars": env},
    )
    yield
    from ray import serve

    serve.shutdown()
    ray.shutdown()


@pytest.fixture(scope="session")
def champion(settings: SluiceSettings, trained_model: TrainedModel) -> VersionInfo:
    """The session model, registered and promoted to champion."""
    registry = Registry(settings)
    info = registry.register(trained_model)
    registry.promote(info.version, by="tests")
    return info


@pytest.fixture(scope="session")
def serve_port() -> int:
    """One HTTP port for every Serve application of the session (Serve has one)."""
    return free_port()


@pytest.fixture(scope="session")
def service(
    champion: VersionInfo, serve_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """deployments/decision.yaml as shipped (the decision app at ``/``, the back office
    at ``/backoffice``), on a free port, with a short alias poll."""
    import yaml

    from sluice.serve.launcher import deploy, load_config
    from sluice.serve.readiness import http_ok, wait_until

    config = Path(__file__).parents[2] / "deployments" / "decision.yaml"
    raw = yaml.safe_load(config.read_text())
    raw["applications"][0]["args"]["model_poll_interval_s"] = 0.5
    for d in raw["applications"][0]["deployments"]:
        if d["name"] == "Decisions":
            d["user_config"]["model_poll_interval_s"] = 0.5
    path = tmp_path_factory.mktemp("serve") / "decision.yaml"
    path.write_text(yaml.safe_dump(raw))
    deploy(load_config(path, port=serve_port))
    url = f"http://127.0.0.1:{serve_port}"
    for probe in (f"{url}/readyz", f"{url}/backoffice/readyz"):
        ready, detail = wait_until(http_ok(probe), 180)
        assert ready, detail
    yield url
    from ray import serve

    serve.delete("decision")
    serve.delete("backoffice")


@pytest.fixture(scope="session")
def llm_config_path() -> Path:
    return Path(__file__).parents[2] / "deployments" / "llm-cpu.yaml"


def deploy_llm(config_path: Path, port: int) -> str:
    """Deploy deployments/llm-cpu.yaml (real vLLM, real model) and wait until it is ready
    as the launcher judges it (every deployment running, a chat completion answered);
    returns the OpenAI base URL."""
    from sluice.serve.launcher import deploy, load_config
    from sluice.serve.readiness import llm_answers, wait_until

    config = load_config(config_path, port=port)
    deploy(config)
    app = config.applications[0]
    base = f"http://127.0.0.1:{port}{app.route_prefix}/v1"
    ready, detail = wait_until(llm_answers(app.name, base, app.args["model_id"]), 600)
    assert ready, f"the LLM deployment did not answer within 600 s: {detail}"
    return base


@pytest.fixture(scope="session")
def llm_deployment(prepared_llm: Path, llm_config_path: Path, serve_port: int) -> Iterator[str]:
    """The CPU LLM deployment, started once per session."""
    yield deploy_llm(llm_config_path, serve_port)
    from ray import serve

    if "llm" in serve.status().applications:
        serve.delete("llm")


@pytest.fixture
def llm_service(llm_deployment: str, llm_config_path: Path, serve_port: int) -> str:
    """The CPU LLM deployment's OpenAI base URL; deployed again if a test took it down."""
    from ray import serve

    if "llm" not in serve.status().applications:
        return deploy_llm(llm_config_path, serve_port)
    return llm_deployment
