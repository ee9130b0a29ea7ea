"""The LLM app behind API keys: Ray Serve LLM's OpenAI ingress with every route asking
for a key with the ``llm`` scope (or ``admin``).

Keys come from the same store as the decision service (:class:`sluice.auth.KeyStore`:
the keys file of the app's Sluice home or ``SLUICE_API_KEYS_FILE``, salted hashes,
re-read when the file changes, so a key revoked on disk stops working on running
replicas). Clients send ``Authorization: Bearer <key>``, which is what the official
``openai`` client does with its ``api_key``. A missing or unknown key is a 401, a key
without the scope a 403, an unreadable keys file a 503; the body is the ingress's
OpenAI-style error.

:class:`KeyedOpenAiIngress` wraps each route of :class:`ray.serve.llm.ingress.OpenAiIngress`
(the routes of ``DEFAULT_ENDPOINTS``) with the check, keeping its signature for FastAPI,
with a ``Request`` parameter added to the routes that have none (``/v1/models``).
"""

# No ``from __future__ import annotations``: FastAPI reads the wrapped signatures.

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request
from ray.llm._internal.serve.core.ingress.ingress import DEFAULT_ENDPOINTS
from ray.serve.llm.ingress import OpenAiIngress

from sluice.auth.keys import KeyStore, Scope
from sluice.errors import SluiceError

REQUEST = "_sluice_request"


def check_key(keys: KeyStore, authorization: str | None) -> None:
    """Nothing for a key with the ``llm`` scope; HTTPException with the error's status
    otherwise (the message names no key)."""
    try:
        keys.authorize(authorization, Scope.LLM)
    except SluiceError as exc:
        raise HTTPException(status_code=exc.status_code, detail=exc.to_dict()) from None


def _keyed(route: Callable[..., Any]) -> Callable[..., Any]:
    """``route`` (an ingress method) checking the request's key first."""
    sig = inspect.signature(route)
    takes_request = "request" in sig.parameters
    params = list(sig.parameters.values())
    if not takes_request:
        params.append(
            inspect.Parameter(REQUEST, inspect.Parameter.KEYWORD_ONLY, annotation=Request)
        )

    @functools.wraps(route)
    async def keyed(self: Any, *args: Any, **kwargs: Any) -> Any:
        request = kwargs.get("request") if takes_request else kwargs.pop(REQUEST, None)
        if request is None and args and isinstance(args[-1], Request):
            request = args[-1]
        header = request.headers.get("authorization") if request is not None else None
        check_key(self._sluice_keys, header)
        return await route(self, *args, **kwargs)

    keyed.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    return keyed


class KeyedOpenAiIngress(OpenAiIngress):
    """The OpenAI ingress whose routes all require a key with the ``llm`` scope;
    ``api_keys_file`` (an ``ingress_extra_kwargs`` entry) says where the keys are."""

    def __init__(self, *args: Any, api_keys_file: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sluice_keys = KeyStore(Path(api_keys_file))


for _name in DEFAULT_ENDPOINTS:
    setattr(KeyedOpenAiIngress, _name, _keyed(getattr(OpenAiIngress, _name)))
