"""Approval of a model version as champion: held-out metrics, drift, a named approver."""

from sluice.approval.approve import Approval, approve, window_metrics

__all__ = ["Approval", "approve", "window_metrics"]
