"""Talking to the LLM deployment through its OpenAI-compatible API.

A base URL that comes from a campaign spec is guarded: :class:`OpenAIChatClient` built
with ``egress`` (the spec's ``copy.allow_hosts``) connects only through the egress guard
(:mod:`sluice.channels.netguard`: each new connection dials an address vetted just before,
never the name). Without ``egress`` (an operator's own URL, the benchmarks) it connects as
the URL says.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from sluice.channels.netguard import Guard, guarded_async_client
from sluice.errors import ConfigError

LLM_URL_FIELD = "copy.llm_url"


class LLMUnavailableError(Exception):
    """The deployment cannot be reached or refuses work (connection, 5xx, not found, an
    API key it does not accept)."""


class GenerationTimeoutError(Exception):
    """One generation ran past its deadline."""


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int


class LLMClient(Protocol):
    model_id: str

    async def complete(
        self,
        messages: list[dict[str, str]],
        schema: dict[str, Any],
        sampling: dict[str, Any],
        deadline_s: float,
    ) -> Completion: ...


class OpenAIChatClient:
    """Chat completions with vLLM structured output (the JSON schema constrains decoding)."""

    def __init__(
        self,
        base_url: str,
        model_id: str,
        api_key: str = "not-needed",
        egress: tuple[str, ...] | None = None,
    ) -> None:
        """``egress``: the URL came from a spec; connect only through the egress guard,
        with these hosts allowed although they are not globally routable."""
        from openai import AsyncOpenAI

        self.model_id = model_id
        self.base_url = base_url
        http_client = None
        if egress is not None:
            guard = Guard(LLM_URL_FIELD, egress)
            http_client = guarded_async_client(
                guard,
                httpx.Limits(max_connections=1000, max_keepalive_connections=100),
                follow_redirects=True,
            )
        self._client = AsyncOpenAI(
            base_url=str(base_url),
            api_key=api_key,
            max_retries=0,
            # openai takes an httpx.AsyncClient as well as its own httpx2 one.
            http_client=http_client,  # type: ignore[arg-type]
        )

    async def complete(
        self,
        messages: list[dict[str, str]],
        schema: dict[str, Any],
        sampling: dict[str, Any],
        deadline_s: float,
    ) -> Completion:
        import openai

        try:
            response = await asyncio.wait_for(
                self._client.chat.completions.create(
                    model=self.model_id,
                    messages=messages,  # type: ignore[arg-type]
                    temperature=float(sampling.get("temperature", 0.7)),
                    top_p=float(sampling.get("top_p", 0.95)),
                    max_tokens=int(sampling.get("max_tokens", 300)),
                    seed=int(sampling.get("seed", 0)),
                    extra_body={"structured_outputs": {"json": schema}},
                    timeout=deadline_s,
                ),
                timeout=deadline_s,
            )
        except (TimeoutError, openai.APITimeoutError) as exc:
            raise GenerationTimeoutError(f"no answer within {deadline_s:g} s") from exc
        except ConfigError as exc:  # the egress guard refused what the name resolves to now
            raise LLMUnavailableError(exc.message) from exc
        except (openai.APIConnectionError, openai.InternalServerError, openai.NotFoundError) as exc:
            raise LLMUnavailableError(str(exc)) from exc
        except openai.APIStatusError as exc:
            if exc.status_code >= 500:
                raise LLMUnavailableError(str(exc)) from exc
            if exc.status_code in (401, 403):  # no key, or not one with the llm scope
                raise LLMUnavailableError(
                    f"the LLM app refused the API key ({exc.status_code})"
                ) from exc
            raise
        choice = response.choices[0]
        usage = response.usage
        return Completion(
            text=choice.message.content or "",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
        )

    async def close(self) -> None:
        await self._client.close()
