"""The audit trail, read back: explain one decision, replay a run's gates, export."""

from sluice.audit.explain import explain
from sluice.audit.export import export_run
from sluice.audit.replay import ReplayReport, replay_run

__all__ = ["ReplayReport", "explain", "export_run", "replay_run"]
