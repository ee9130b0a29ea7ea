"""Service metrics: Prometheus through Ray's metrics API inside Serve, nothing elsewhere."""

from __future__ import annotations

from typing import Protocol

LATENCY_BOUNDARIES_MS = [
    1.0,
    2.0,
    5.0,
    10.0,
    20.0,
    50.0,
    100.0,
    200.0,
    500.0,
    1000.0,
    2000.0,
    5000.0,
]


class ServiceMetrics(Protocol):
    def request(self, route: str, status: int, latency_ms: float) -> None: ...

    def decision(self, offer_id: str | None, channel: str | None) -> None: ...


class NoMetrics:
    """For the service outside Ray (tests, the in-process baseline)."""

    def request(self, route: str, status: int, latency_ms: float) -> None:
        return None

    def decision(self, offer_id: str | None, channel: str | None) -> None:
        return None


class RayMetrics:
    """``sluice_requests_total``, ``sluice_request_latency_ms``, ``sluice_decisions_total``
    (exported by Ray's metrics agent with the ``ray_`` prefix)."""

    def __init__(self) -> None:
        from ray.util import metrics

        self._requests = metrics.Counter(
            "sluice_requests_total",
            "HTTP requests by route and status.",
            tag_keys=("route", "status"),
        )
        self._latency = metrics.Histogram(
            "sluice_request_latency_ms",
            "HTTP request latency in milliseconds.",
            boundaries=LATENCY_BOUNDARIES_MS,
            tag_keys=("route",),
        )
        self._decisions = metrics.Counter(
            "sluice_decisions_total",
            "Decisions by chosen offer and channel.",
            tag_keys=("offer_id", "channel"),
        )

    def request(self, route: str, status: int, latency_ms: float) -> None:
        self._requests.inc(tags={"route": route, "status": str(status)})
        self._latency.observe(latency_ms, tags={"route": route})

    def decision(self, offer_id: str | None, channel: str | None) -> None:
        self._decisions.inc(tags={"offer_id": offer_id or "none", "channel": channel or "none"})


def model_version_gauge() -> object:
    """``sluice_model_version{model, alias}``: the version a decision replica serves."""
    from ray.util import metrics

    return metrics.Gauge(
        "sluice_model_version",
        "Registered model version served, per alias.",
        tag_keys=("model", "alias"),
    )
