"""When a deployed app counts as ready: it answers what its users will ask.

A probe says whether an app is ready now, and why not. The decision app is ready when
``/readyz`` answers 200 (its default model is loaded), the back office when its
``/readyz`` does (the database answers). The LLM app is ready only when
every deployment of the app is running **and** a real chat completion for the served
model id has answered: its OpenAI ingress answers ``/v1/models`` before the engine has
loaded, so that route proves nothing. :func:`wait_until` polls a probe, reports progress
and, past its timeout, returns the last reason (the app's status included).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

Probe = Callable[[], tuple[bool, str]]
"""Ready now? And if not, why (for the progress line and the final error)."""


def http_ok(url: str) -> Probe:
    """Ready when ``url`` answers 200."""

    def probe() -> tuple[bool, str]:
        try:
            r = httpx.get(url, timeout=5)
        except httpx.HTTPError as exc:
            return False, str(exc) or type(exc).__name__
        return r.status_code == 200, f"{r.status_code}: {r.text[:200]}"

    return probe


def all_of(probes: list[Probe]) -> Probe:
    """Ready when every probe is; the first that is not says why."""

    def probe() -> tuple[bool, str]:
        for p in probes:
            ready, detail = p()
            if not ready:
                return False, detail
        return True, "ready"

    return probe


def app_status(app: str) -> tuple[bool, str]:
    """Whether every deployment of Serve application ``app`` is running, and its status."""
    from ray import serve

    status = serve.status().applications.get(app)
    if status is None:
        return False, f"application {app!r} is not deployed"
    states = {name: str(d.status.value) for name, d in status.deployments.items()}
    running = str(status.status.value) == "RUNNING" and all(s == "HEALTHY" for s in states.values())
    detail = f"{app}: {status.status.value}"
    if status.message:
        detail += f" ({status.message[:300]})"
    if states:
        detail += "; " + ", ".join(f"{n} {s}" for n, s in sorted(states.items()))
    return running, detail


def llm_answers(
    app: str,
    base_url: str,
    model_id: str,
    timeout_s: float = 120.0,
    api_key: str | None = None,
) -> Probe:
    """Ready when the app is running and a chat completion for ``model_id`` answers
    (sent with ``api_key`` when the app requires one)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    body = {
        "model": model_id,
        "messages": [{"role": "user", "content": "Say OK."}],
        "max_tokens": 1,
    }

    def probe() -> tuple[bool, str]:
        running, detail = app_status(app)
        if not running:
            return False, detail
        try:
            r = httpx.post(
                f"{base_url}/chat/completions", json=body, headers=headers, timeout=timeout_s
            )
        except httpx.HTTPError as exc:
            return False, f"{detail}; chat completion: {str(exc) or type(exc).__name__}"
        if r.status_code != 200 or not r.json().get("choices"):
            return False, f"{detail}; chat completion: {r.status_code}: {r.text[:200]}"
        return True, "answering"

    return probe


def wait_until(
    probe: Probe,
    timeout_s: float,
    progress: Callable[[str], None] | None = None,
    every_s: float = 15.0,
) -> tuple[bool, str]:
    """Poll ``probe`` until it is ready or ``timeout_s`` has passed; returns (ready, the
    last reason). ``progress`` gets a line about every ``every_s`` seconds of waiting."""
    started = time.monotonic()
    next_line = started + every_s
    detail = "not asked yet"
    while True:
        ready, detail = probe()
        if ready:
            return True, detail
        now = time.monotonic()
        if now - started >= timeout_s:
            return False, detail
        if progress is not None and now >= next_line:
            progress(f"waiting ({now - started:.0f} s): {detail}")
            next_line = now + every_s
        time.sleep(min(1.0, max(0.0, timeout_s - (now - started))))
