"""``sluice orchestrator run``: the always-on actor of time."""

from __future__ import annotations

import logging
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Annotated, Any

import typer

from sluice.cli.output import console, emit_json

app = typer.Typer(
    help="The orchestrator: journeys, timers, deferred sends, schedules.", no_args_is_help=True
)
log = logging.getLogger("sluice.orchestrator")


STALE_S = 120.0
"""The health check fails when the loop has not finished a step for this long."""


def _health(port: int, beat: list[float]) -> ThreadingHTTPServer:
    """``GET /healthz``: 200 while the loop finished a step within :data:`STALE_S`."""

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fresh = bool(beat) and time.monotonic() - beat[-1] < STALE_S
            ok = self.path == "/healthz" and fresh
            self.send_response(200 if ok else 503)
            self.end_headers()
            self.wfile.write(b"ok\n" if ok else b"not ready\n")

        def log_message(self, *_: Any) -> None:
            return

    server = ThreadingHTTPServer(("0.0.0.0", port), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@app.command("run")
def run(
    campaign: Annotated[
        list[Path] | None,
        typer.Option(help="Campaign spec whose schedule: to keep (repeatable)."),
    ] = None,
    batch: Annotated[int, typer.Option(min=1, max=100_000, help="Instances per round.")] = 1000,
    poll: Annotated[float, typer.Option(min=0.01, help="Seconds to pause when idle.")] = 0.5,
    health_port: Annotated[int | None, typer.Option(help="Serve GET /healthz here.")] = None,
    max_seconds: Annotated[
        float | None, typer.Option(help="Stop after this long (default: until signalled).")
    ] = None,
    stream: Annotated[
        bool, typer.Option(help="Consume the Redis stream (SLUICE_REDIS_URL).")
    ] = True,
) -> None:
    """Run until SIGTERM/SIGINT: events in, journeys on, deferred sends out, schedules kept."""
    from sluice.channels.unsubscribe import secret
    from sluice.journeys.engine import EngineConfig
    from sluice.orchestrator.loop import Orchestrator, OrchestratorConfig
    from sluice.registry.registry import Registry
    from sluice.settings import get_settings
    from sluice.store.db import without_password

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = get_settings()
    registry = Registry(settings)

    def guardrails(run_id: str) -> Any:
        from sluice.feedback.guardrails import evaluate_guardrails
        from sluice.store.db import connect

        return evaluate_guardrails(connect(settings.effective_database_url), registry, run_id)

    config = OrchestratorConfig(
        EngineConfig(
            settings.effective_database_url,
            settings.home_dir,
            batch=batch,
            models=registry.load,
        ),
        redis_url=settings.redis_url if stream else None,
        stream=settings.events_stream,
        poll_s=poll,
        campaigns=tuple(campaign or ()),
        guardrails=guardrails,
    )
    stop = threading.Event()
    beat: list[float] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if max_seconds is not None:
        timer = threading.Timer(max_seconds, stop.set)
        timer.daemon = True  # a signal stops the loop without waiting for the timer
        timer.start()
    server = _health(health_port, beat) if health_port else None
    orchestrator = Orchestrator(config, secret(settings.home_dir), settings.clock)
    totals: dict[str, int] = {"events": 0, "steps": 0, "sends": 0}

    def on_step(report: Any) -> None:
        beat[:] = [time.monotonic()]
        totals["events"] += report.events
        totals["steps"] += report.steps
        totals["sends"] += report.sends
        if report.events or report.steps or report.sends:
            log.info("events %d, steps %d, sends %d", report.events, report.steps, report.sends)

    console.print(
        f"orchestrator: database {without_password(settings.effective_database_url)}, "
        f"stream {'on' if config.redis_url else 'off'}, {len(orchestrator.engine.specs)} journeys"
    )
    try:
        orchestrator.run(stop, on_step)
    finally:
        orchestrator.close()
        if server is not None:
            server.shutdown()
    emit_json(totals)
