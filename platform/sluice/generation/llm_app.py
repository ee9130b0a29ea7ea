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


def build_llm_app(args: LLMAppArgs) -> Application:
    """``build_openai_app`` over one vLLM model."""
    from ray.serve.llm import build_openai_app

    given: object = args
    if not isinstance(given, LLMAppArgs):
        args = LLMAppArgs.model_validate(given)
    builder: dict[str, Any] = {"llm_configs": [llm_config(args)]}
    if args.ingress_deployment_config:
        builder["ingress_deployment_config"] = args.ingress_deployment_config
    app: Application = build_openai_app(builder)
    return app
