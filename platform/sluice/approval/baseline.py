"""The margin a version must keep over the simple baselines it was trained beside.

With ``SLUICE_PROMOTION_MIN_LIFT_OVER_BASELINE`` set, a version's validation ROC AUC
recorded at registration must be at least that much above the best baseline's ROC AUC
recorded with it (both measured on the same validation rows). A version without recorded
baselines is refused too: the margin cannot be shown.
"""

from __future__ import annotations

from dataclasses import dataclass

from sluice.errors import PromotionRefusedError
from sluice.registry import VersionInfo

SETTING = "SLUICE_PROMOTION_MIN_LIFT_OVER_BASELINE"
FIELD = "promotion_min_lift_over_baseline"
METRIC = "roc_auc"


@dataclass(frozen=True)
class BaselineMargin:
    """A passed comparison: the version's ROC AUC against the best baseline's."""

    baseline: str
    baseline_value: float
    value: float
    margin: float

    def describe(self) -> str:
        return (
            f"{METRIC}: {self.value:.4f} >= best baseline {self.baseline} "
            f"{self.baseline_value:.4f} + {self.margin:g} ok"
        )


def check_baseline_margin(info: VersionInfo, margin: float | None) -> BaselineMargin | None:
    """Refuse ``info`` unless its ROC AUC beats the best recorded baseline by ``margin``;
    ``None`` when no margin is required."""
    if margin is None:
        return None
    where = f"version {info.version} of {info.name}"
    value = info.metrics.get(METRIC)
    scored = {n: m[METRIC] for n, m in info.baselines.items() if METRIC in m}
    if value is None or not scored:
        missing = f"{METRIC}" if value is None else "baseline metrics"
        raise PromotionRefusedError(
            f"{where}: {SETTING}={margin:g} requires the version's {METRIC} and its baselines' "
            f"recorded at registration, and it has no {missing}; retrain it with "
            "`sluice train` (which records baselines) or unset the setting",
            field=FIELD,
        )
    best = max(scored, key=lambda n: scored[n])
    needed = scored[best] + margin
    if value < needed:
        raise PromotionRefusedError(
            f"{where}: validation {METRIC} {value:.4f} does not exceed the best baseline "
            f"({best}, {METRIC} {scored[best]:.4f}) by {SETTING}={margin:g}: "
            f"needs >= {needed:.4f}",
            field=FIELD,
            metric=METRIC,
            value=value,
            baseline=best,
            baseline_value=scored[best],
            margin=margin,
        )
    return BaselineMargin(best, scored[best], value, margin)
