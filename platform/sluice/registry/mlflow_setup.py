"""Connecting to MLflow: the embedded SQLite store under SLUICE_HOME, or a server."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sluice.settings import SluiceSettings

if TYPE_CHECKING:
    from mlflow import MlflowClient


def mlflow_client(s: SluiceSettings) -> MlflowClient:
    """A client for the configured tracking and registry stores (creating the embedded one).

    Only this client talks to MLflow: nothing sets MLflow's process-wide tracking URI, so
    two registries (a bench's scratch home beside the user's) never leak into each other."""
    import mlflow

    tracking = s.effective_tracking_uri
    if tracking.startswith("sqlite:///"):
        s.home_dir.mkdir(parents=True, exist_ok=True)
    registry = s.registry_uri or tracking
    return mlflow.MlflowClient(tracking_uri=tracking, registry_uri=registry)


def ensure_experiment(client: MlflowClient, name: str, artifact_location: str) -> str:
    """The id of experiment ``name``, created with ``artifact_location`` if new."""
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return str(existing.experiment_id)
    return str(client.create_experiment(name, artifact_location=artifact_location))
