"""A model version's way to champion: approval on a held-out window, in a person's name.

``approve`` evaluates the version on a held-out labelled window (or, without one, takes
the validation metrics recorded at registration), checks the configured floors and
ceilings, checks drift (the window's PSI against the version's training reference, and
any campaign run that scored with the version: the score's PSI blocks, features' warn,
unless ``drift_block_on`` is ``any``), with ``promotion_min_lift_over_baseline`` set checks
the margin over the simple baselines recorded at registration
(:mod:`sluice.approval.baseline`), and only then points ``champion`` at it
in the name of a person. It is recorded as MLflow tags on the version and in the
operations log; :func:`sluice.registry.rollback.rollback` is the way back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sluice.approval.baseline import BaselineMargin, check_baseline_margin
from sluice.contracts.feedback import DriftRow
from sluice.drift.measure import DriftLimits, drift_rows
from sluice.errors import ModelNotFoundError, PromotionRefusedError
from sluice.registry import CHAMPION, MetricCheck, ModelURI, Registry
from sluice.scoring.predictor import prepare_predictor
from sluice.store.db import connect
from sluice.store.drift import stored_drift
from sluice.store.operations import OperationsLog
from sluice.training.dataset import read_labelled
from sluice.training.metrics import evaluate


@dataclass(frozen=True)
class Approval:
    version: str
    by: str
    window: str
    metrics: dict[str, float]
    checks: list[MetricCheck]
    drift: list[DriftRow] = field(default_factory=list)
    previous: str | None = None
    baseline: BaselineMargin | None = None
    """The margin over the best baseline, when the settings require one."""


def window_metrics(
    registry: Registry, version: str, window: Path, name: str | None = None
) -> tuple[dict[str, float], list[DriftRow]]:
    """The version's metrics on a labelled feature table, and that table's drift."""

    model = registry.load(ModelURI(name or registry.settings.model_name, version=version))
    data = read_labelled(window, model.contract)
    predictor = prepare_predictor(model, "booster", registry.settings.home_dir / "cache")
    scores = predictor.build().predict(data.X)
    metrics = evaluate(data.y, scores).scalars()
    drift: list[DriftRow] = []
    if model.reference is not None:
        counts = [
            b.histogram(data.X[:, j]) * len(data.X) for j, b in enumerate(model.reference.features)
        ]
        limits = DriftLimits(registry.settings.drift_warn, registry.settings.drift_block)
        drift = drift_rows(model.reference, counts, scores, limits)
    return metrics, drift


def approve(
    version: str,
    by: str,
    *,
    window: Path | None = None,
    name: str | None = None,
    floors: dict[str, float] | None = None,
    ceilings: dict[str, float] | None = None,
    registry: Registry,
) -> Approval:
    """Make ``version`` champion if it passes floors and drift checks; refuse otherwise."""

    model_name = name or registry.settings.model_name
    if not by.strip():
        raise PromotionRefusedError("by: an approval needs the approver's name", field="by")
    if window is not None and not window.exists():
        raise PromotionRefusedError(f"window: {window} not found", field="window")
    info = registry.resolve(ModelURI(model_name, version=version))
    metrics, drift = (
        window_metrics(registry, version, window, model_name)
        if window is not None
        else (info.metrics, [])
    )
    engine = connect(registry.settings.effective_database_url)
    runs_drift = [row for _, _, row in stored_drift(engine, version=version)]
    on = registry.settings.drift_block_on
    blocked = [
        d
        for d in (*drift, *runs_drift)
        if d.level == "block" and (on == "any" or d.variable == "score")
    ]
    if blocked:
        worst = max(blocked, key=lambda d: d.psi)
        raise PromotionRefusedError(
            f"version {version} of {model_name}: drift blocks promotion "
            f"({worst.variable} PSI {worst.psi:.3f} >= {registry.settings.drift_block})",
            field="version",
            drift=[d.model_dump() for d in blocked],
        )
    margin = check_baseline_margin(info, registry.settings.promotion_min_lift_over_baseline)
    try:
        previous: str | None = registry.resolve(ModelURI(model_name, alias=CHAMPION)).version
    except ModelNotFoundError:  # the first champion
        previous = None
    label = str(window) if window is not None else "registration validation"
    checks = registry.promote(
        version,
        to=CHAMPION,
        name=model_name,
        floors=floors,
        ceilings=ceilings,
        by=by,
        metrics=metrics,
    )
    tags: dict[str, Any] = {
        "approval.by": by,
        "approval.at": datetime.now(UTC).isoformat(),
        "approval.window": label[:500],
        **{f"approval.metric.{k}": f"{v:.6f}" for k, v in metrics.items()},
    }
    if margin is not None:
        tags["approval.baseline"] = margin.describe()
    if drift:
        tags["approval.drift_max_psi"] = f"{max(d.psi for d in drift):.6f}"
    for key, value in tags.items():
        registry.client.set_model_version_tag(model_name, version, key, str(value))
    OperationsLog(engine).record(
        "approve",
        f"model:{model_name}/{version}",
        by,
        {
            "alias": CHAMPION,
            "previous": previous,
            "window": label,
            "metrics": metrics,
            "checks": [c.describe() for c in checks],
            "baseline": margin.describe() if margin is not None else None,
            "drift_warnings": [d.model_dump() for d in drift if d.level == "warn"],
        },
    )
    return Approval(version, by, label, metrics, checks, drift, previous, margin)
