"""The in-process baseline of ``sluice bench online``: the same API, model and keys in
one uvicorn process, with no Ray at all.

``python -m sluice.bench.bare_app --port PORT [--model NAME@ALIAS]``
"""

from __future__ import annotations

import argparse
import sys

import uvicorn

from sluice.auth.keys import KeyStore
from sluice.contracts.propensity import PROPENSITY_V1
from sluice.decisioning.catalog import CatalogSource
from sluice.online import OnlineFeatures, OnlineStoreConfig
from sluice.registry.registry import Registry
from sluice.serve.backends import LocalBackend
from sluice.serve.engine import ScoringEngine
from sluice.serve.http import create_api
from sluice.settings import get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", default="sluice-propensity@champion")
    args = parser.parse_args(argv)
    settings = get_settings()  # this process is the app's edge
    online = OnlineFeatures(OnlineStoreConfig.from_settings(settings), PROPENSITY_V1)
    engine = ScoringEngine(
        [args.model], PROPENSITY_V1, Registry(settings), features=online, clock=settings.clock
    )
    engine.refresh()
    if not engine.ready():
        print(f"model {args.model} could not be loaded", file=sys.stderr)
        return 1
    app = create_api(
        LocalBackend(engine, CatalogSource.read(), settings.clock),
        KeyStore(settings.keys_file),
        PROPENSITY_V1,
    )
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
