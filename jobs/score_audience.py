"""Ray job entrypoint: batch-score an audience with a registered model.

Run it locally (``python jobs/score_audience.py --audience ... --out ...``) or as a
RayJob on Kubernetes, where ``RAY_ADDRESS`` points it at the cluster. It is the same
code path as ``sluice score``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from sluice.errors import SluiceError
from sluice.registry import Registry
from sluice.scoring import ScoreRequest, run_scoring
from sluice.settings import SluiceSettings, get_settings


def main(argv: list[str] | None = None, settings: SluiceSettings | None = None) -> int:
    """``settings``: where the registry is (default: this process's environment, as a
    RayJob's entrypoint reads it)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--audience", required=True, help="Parquet file or directory")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--model", default="sluice-propensity@champion")
    parser.add_argument("--predictor", default="auto", choices=["auto", "compiled", "booster"])
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    request = ScoreRequest(
        audience=args.audience,
        model=args.model,
        out=args.out,
        predictor=args.predictor,
        overwrite=args.overwrite,
        progress=False,
    )
    try:
        report = run_scoring(request, Registry(settings or get_settings()))
    except SluiceError as exc:
        print(json.dumps({"error": exc.to_dict()}), file=sys.stderr)
        return 2
    print(json.dumps(asdict(report)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
