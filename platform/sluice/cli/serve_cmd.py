"""``sluice serve`` and ``sluice keys ...``"""

from __future__ import annotations

import signal
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from sluice.cli.output import console, emit_json, table
from sluice.settings import get_settings

keys_app = typer.Typer(
    help="API keys for the decision service (stored as salted hashes).", no_args_is_help=True
)


@keys_app.command("create")
def create_key(
    name: Annotated[
        str, typer.Option(help="A name for the key (shown in logs instead of the key).")
    ],
    scopes: Annotated[str, typer.Option(help="Comma-separated: score, decide, events, admin.")],
    brand: Annotated[
        list[str] | None,
        typer.Option(
            help="Limit the events scope to this brand (repeat for several); default: every brand."
        ),
    ] = None,
) -> None:
    """Create a key; it is printed once, as {"key": ...}, and never stored in plain text."""
    from sluice.auth import KeyStore, parse_scopes

    brands = tuple(brand) if brand else None
    key, record = KeyStore(get_settings().keys_file).create(name, parse_scopes(scopes), brands)
    emit_json(
        {
            "key": key,
            "name": record.name,
            "scopes": [s.value for s in record.scopes],
            "brands": list(record.brands) if record.brands is not None else None,
        }
    )


@keys_app.command("list")
def list_keys() -> None:
    """Every key's name, scopes and state (never the key)."""
    from sluice.auth import KeyStore

    records = KeyStore(get_settings().keys_file).list()
    rows = [
        [
            r.name,
            ",".join(s.value for s in r.scopes),
            ",".join(r.brands) if r.brands is not None else "all",
            r.created_at.strftime("%Y-%m-%d %H:%M"),
            "revoked" if r.revoked_at else "active",
        ]
        for r in records
    ]
    console.print(table("API keys", ["name", "scopes", "brands", "created (UTC)", "state"], rows))
    emit_json(
        {
            "keys": [
                {
                    "name": r.name,
                    "scopes": [s.value for s in r.scopes],
                    "brands": list(r.brands) if r.brands is not None else None,
                    "active": r.active,
                }
                for r in records
            ]
        }
    )


@keys_app.command("revoke")
def revoke_key(name: Annotated[str, typer.Argument(help="Name of the key to revoke.")]) -> None:
    """Revoke a key; the service refuses it from the next request on."""
    from sluice.auth import KeyStore

    record = KeyStore(get_settings().keys_file).revoke(name)
    emit_json({"name": record.name, "revoked": True})


def serve(
    port: Annotated[int, typer.Option(help="HTTP port.")] = 8000,
    config: Annotated[Path, typer.Option(help="Serve config (deployments/decision.yaml).")] = Path(
        "deployments/decision.yaml"
    ),
    host: Annotated[str | None, typer.Option(help="Bind address (default: the config's).")] = None,
    fast: Annotated[
        bool, typer.Option(help="HAProxy ingress and throughput-optimised Serve.")
    ] = True,
    ready_timeout: Annotated[float, typer.Option(help="Seconds to wait for readiness.")] = 180.0,
) -> None:
    """Deploy the decision service; print one JSON line with its URL once ready; serve until
    interrupted."""
    from ray import serve as ray_serve

    from sluice.serve.launcher import require_ready, serve_decision_app

    stop = {"now": False}

    def _stop(*_: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        served = require_ready(serve_decision_app(config, port, host, fast, ready_timeout))
        emit_json(asdict(served))
        while not stop["now"]:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        # Shut Serve down on every way out: its HAProxy process outlives a killed cluster.
        ray_serve.shutdown()
