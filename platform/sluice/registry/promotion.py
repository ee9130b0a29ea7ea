"""Metric floors and ceilings a model version must meet before it becomes champion."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class MetricCheck:
    metric: str
    bound: Literal["min", "max"]
    threshold: float
    value: float | None

    @property
    def passed(self) -> bool:
        if self.value is None or math.isnan(self.value):
            return False
        return self.value >= self.threshold if self.bound == "min" else self.value <= self.threshold

    def describe(self) -> str:
        op = ">=" if self.bound == "min" else "<="
        if self.value is None:
            return f"{self.metric}: not recorded (needs {op} {self.threshold:g})"
        verdict = "ok" if self.passed else "FAILS"
        return f"{self.metric}: {self.value:.4f} {op} {self.threshold:g} {verdict}"


def check_metrics(
    metrics: Mapping[str, float], floors: Mapping[str, float], ceilings: Mapping[str, float]
) -> list[MetricCheck]:
    """One check per configured floor (minimum) and ceiling (maximum)."""
    checks = [MetricCheck(m, "min", t, metrics.get(m)) for m, t in sorted(floors.items())]
    checks += [MetricCheck(m, "max", t, metrics.get(m)) for m, t in sorted(ceilings.items())]
    return checks
