"""``sluice llm ...``"""

from __future__ import annotations

import signal
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from sluice.cli.output import console, emit_json

app = typer.Typer(
    help="The LLM deployment: prepare the embedded model, serve it.", no_args_is_help=True
)


@app.command("prepare")
def prepare(
    force: Annotated[
        bool, typer.Option(help="Convert again even if an intact checkpoint exists.")
    ] = False,
) -> None:
    """Convert the packaged SmolLM2 model to a checkpoint under SLUICE_HOME (idempotent)."""
    from sluice.generation.model_prep import model_dir
    from sluice.generation.model_prep import prepare as run
    from sluice.settings import get_settings

    result = run(model_dir(get_settings().home_dir), force=force)
    verb = "converted and checked" if result.converted else "already prepared, files intact"
    console.print(f"{result.model_id}: {verb} at {result.path} ({result.seconds:.1f} s)")
    emit_json(asdict(result))


@app.command("serve")
def serve(
    config: Annotated[Path, typer.Option(help="Serve config of the LLM app.")] = Path(
        "deployments/llm-cpu.yaml"
    ),
    port: Annotated[int | None, typer.Option(help="HTTP port (default: the config's).")] = None,
    fast: Annotated[
        bool, typer.Option(help="HAProxy ingress and throughput-optimised Serve.")
    ] = True,
    ready_timeout: Annotated[
        float,
        typer.Option(help="Seconds to wait until a chat completion answers; then fail."),
    ] = 600.0,
    num_cpus: Annotated[
        int | None,
        typer.Option(min=1, help="Logical CPUs of a Ray cluster this command starts."),
    ] = None,
) -> None:
    """Deploy the LLM app; print one JSON line with its OpenAI base URL once every
    deployment runs and a real chat completion has answered; serve until interrupted."""
    from ray import serve as ray_serve

    from sluice.serve.launcher import require_ready, serve_llm_app

    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    try:
        served = require_ready(
            serve_llm_app(
                config,
                port,
                None,
                fast,
                ready_timeout,
                num_cpus,
                lambda line: console.print(line, markup=False),
            )
        )
        emit_json({**asdict(served), "base_url": f"{served.url}/v1"})
        while not stop["now"]:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        ray_serve.shutdown()
