"""The MLflow-backed model registry: register, resolve aliases, load, promote."""

from sluice.registry.loaded import LoadedModel
from sluice.registry.promotion import MetricCheck, check_metrics
from sluice.registry.registry import CHALLENGER, CHAMPION, Registry, VersionInfo
from sluice.registry.uri import ModelURI

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "LoadedModel",
    "MetricCheck",
    "ModelURI",
    "Registry",
    "VersionInfo",
    "check_metrics",
]
