"""``sluice bench llm``, the batch path: ``ray.data.llm``'s vLLM processor on the same
prompts, engine settings and tokens per request as the Serve and bare ``vllm.LLM``
measurements (see :mod:`sluice.bench.llm`).

The processor starts its engine (and the Ray Data pipeline) for every dataset it runs, so
two datasets are timed, a small one (32 prompts) and a large one (``requests``), and the
rate is the difference of their generated tokens over the difference of their times: the
start, the same in both, cancels out, as bare vLLM's load is not timed either.
``wall_s`` is the large run as a campaign job would see it, start included, and
``engine_start_s`` what the small run spent besides generating at that rate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DataLLMRate:
    tok_s: float
    wall_s: float
    engine_start_s: float
    requests: int


def data_llm_rate(
    model_source: str, app: dict[str, Any], prompts: list[Any], tokens: int, requests: int
) -> DataLLMRate:
    """Generated tokens/s of the copy job's processor
    (:func:`sluice.generation.processor.build_engine_processor`) over ``requests``
    prompts (cycled, more than 32), in batches of 32, with ``app`` the Serve config's LLM
    args (engine, env, placement)."""
    from sluice.generation.processor import ProcessorSettings, build_engine_processor

    settings = ProcessorSettings(
        model_id=str(app.get("model_id") or "bench"),
        model_source=model_source,
        engine_kwargs=dict(app.get("engine_kwargs") or {}),
        env={k: str(v) for k, v in (app.get("env") or {}).items()},
        placement_group_config=app.get("placement_group_config"),
        accelerator_type=app.get("accelerator_type"),
        batch_size=32,
    )
    processor = build_engine_processor(
        settings, lambda row: {"n": int(row.get("num_generated_tokens") or 0)}
    )
    rows = [
        {
            "messages": prompts[i % len(prompts)],
            "sampling_params": {"max_tokens": tokens, "ignore_eos": True, "temperature": 0.0},
        }
        for i in range(requests)
    ]
    small_tokens, small_wall = _timed(processor, rows[:32])
    large_tokens, large_wall = _timed(processor, rows)
    rate = max((large_tokens - small_tokens) / max(large_wall - small_wall, 1e-6), 1e-6)
    return DataLLMRate(
        tok_s=round(rate, 1),
        wall_s=round(large_wall, 1),
        engine_start_s=round(max(small_wall - small_tokens / rate, 0.0), 1),
        requests=len(rows),
    )


def _timed(processor: Any, rows: list[dict[str, Any]]) -> tuple[int, float]:
    """(generated tokens, seconds) of one processor run over ``rows``."""
    import ray.data

    started = time.perf_counter()
    out = processor(ray.data.from_items(rows)).take_all()
    return sum(int(r["n"]) for r in out), time.perf_counter() - started
