"""Point-in-time feature building from a synthetic base or a real transaction log."""

from sluice.features.build import (
    LABEL_COLUMNS,
    FeatureBuild,
    build_features,
    write_synthetic_features,
)
from sluice.features.sources import History, load_synthetic, load_transaction_log

__all__ = [
    "LABEL_COLUMNS",
    "FeatureBuild",
    "History",
    "build_features",
    "load_synthetic",
    "load_transaction_log",
    "write_synthetic_features",
]
