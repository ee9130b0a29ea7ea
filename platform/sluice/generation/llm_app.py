"""The LLM application: vLLM behind Ray Serve LLM's OpenAI-compatible API.

``deployments/llm-cpu.yaml`` and ``deployments/llm-gpu.yaml`` point Serve at
:func:`build_llm_app`. It resolves ``builtin:`` model sources to the checkpoint that
``sluice llm prepare`` made, then hands the rest to ``ray.serve.llm.build_openai_app``,
so ``/v1/chat/completions`` and ``/v1/models`` answer the official ``openai`` client.
"""

# No ``from __future__ import annotations``: Serve reads build_llm_app's annotation.

from pathlib import Path
from typing import Any

from pydantic import Field
from ray.serve import Application

from sluice.contracts._base import Contract
from sluice.errors import ConfigError
from sluice.settings import get_settings

BUILTIN = "builtin:"


class LLMAppArgs(Contract):
    """Arguments of the LLM application."""

    model_id: str = Field(default="smollm2-135m-instruct", min_length=1)
    """The model name clients pass (``model=`` in the OpenAI API)."""
    model_source: str = "builtin:smollm2-135m-instruct"
    """``builtin:NAME`` (prepared under SLUICE_HOME/models), a local path or a hub id."""
    engine_kwargs: dict[str, Any] = Field(default_factory=dict)
    """vLLM engine arguments (dtype, max_model_len, tensor_parallel_size, ...)."""
    accelerator_type: str | None = None
    """GPU type to schedule on (``L4``, ``A10G``, ``H100``...); None on CPU."""
    placement_group_config: dict[str, Any] | None = None
    """Resources per replica, e.g. ``{"bundles": [{"CPU": 1}]}``; needed on CPU."""
    deployment_config: dict[str, Any] = Field(default_factory=dict)
    """Serve options of the LLM deployment: autoscaling_config, max_ongoing_requests..."""
    ingress_deployment_config: dict[str, Any] = Field(default_factory=dict)
    """Serve options of the OpenAI ingress deployment (ray_actor_options...)."""
    env: dict[str, str] = Field(default_factory=dict)
    """Environment of the engine's processes (VLLM_CPU_KVCACHE_SPACE...)."""
    sluice_home: str | None = None
    """Where ``builtin:`` sources are prepared; default: the builder's SLUICE_HOME."""
    require_api_key: bool = False
    """Every route asks for ``Authorization: Bearer <key>`` with the ``llm`` scope, from
    the decision service's key store (:mod:`sluice.generation.llm_auth`); on for
    Kubernetes, off for a local deployment on loopback."""
    api_keys_file: str | None = None
    """The keys file when ``require_api_key``; default: the builder's (SLUICE_API_KEYS_FILE,
    else SLUICE_HOME/api-keys.json)."""


def resolve_source(source: str, home: Path) -> str:
    if not source.startswith(BUILTIN):
        return source
    name = source.removeprefix(BUILTIN)
    path = home / "models" / name
    if not (path / "config.json").is_file():
        raise ConfigError(
            f"model_source: {source} is not prepared at {path}; run `sluice llm prepare`",
            field="model_source",
        )
    return str(path)


def _home(args: LLMAppArgs) -> Path:
    """The app's Sluice home: its ``sluice_home``, else the builder's settings (this
    builder is the app's edge, where configuration is read)."""
    return (
        Path(args.sluice_home).expanduser().resolve()
        if args.sluice_home
        else get_settings().home_dir
    )


def _keys_file(args: LLMAppArgs) -> Path:
    """The builder's keys file: SLUICE_API_KEYS_FILE, else the app's Sluice home's."""
    settings = get_settings()
    if settings.api_keys_file or not args.sluice_home:
        return settings.keys_file
    return _home(args) / "api-keys.json"


def llm_config(args: LLMAppArgs) -> Any:
    """The ``ray.serve.llm.LLMConfig`` these arguments describe."""
    from ray.serve.llm import LLMConfig

    kwargs: dict[str, Any] = {
        "model_loading_config": {
            "model_id": args.model_id,
            "model_source": resolve_source(args.model_source, _home(args)),
        },
        "engine_kwargs": args.engine_kwargs,
        "deployment_config": args.deployment_config,
        "runtime_env": {"env_vars": args.env} if args.env else None,
    }
    if args.accelerator_type:
        kwargs["accelerator_type"] = args.accelerator_type
    if args.placement_group_config:
        kwargs["placement_group_config"] = args.placement_group_config
    return LLMConfig(**kwargs)


def openai_builder(args: LLMAppArgs) -> dict[str, Any]:
    """The ``build_openai_app`` arguments for ``args``: one model, and the keyed ingress
    when ``require_api_key``."""
    builder: dict[str, Any] = {"llm_configs": [llm_config(args)]}
    if args.require_api_key:
        from sluice.generation.llm_auth import KeyedOpenAiIngress

        keys_file = args.api_keys_file or str(_keys_file(args))
        builder["ingress_cls_config"] = {
            "ingress_cls": KeyedOpenAiIngress,
            "ingress_extra_kwargs": {"api_keys_file": keys_file},
        }
    if args.ingress_deployment_config:
        builder["ingress_deployment_config"] = args.ingress_deployment_config
    return builder


def build_llm_app(args: LLMAppArgs) -> Application:
    """``build_openai_app`` over one vLLM model (behind API keys if asked)."""
    from ray.serve.llm import build_openai_app

    given: object = args
    if not isinstance(given, LLMAppArgs):
        args = LLMAppArgs.model_validate(given)
    app: Application = build_openai_app(openai_builder(args))
    return app
