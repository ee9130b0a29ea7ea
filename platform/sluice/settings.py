"""Settings, read from ``SLUICE_*`` environment variables once, at an edge.

An edge (a CLI command, a Serve app builder, a job's entrypoint, a benchmark) calls
:func:`get_settings` and hands the object, or the values taken from it, down to what needs
them; nothing below an edge reads the environment for configuration (a unit test checks
which modules call it). Nothing here touches the disk or a server at import time. The
embedded defaults keep everything under ``SLUICE_HOME`` (MLflow with a SQLite backend and
local artifacts, SQLite for the ledger); setting a URL points the same code at a server.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from sluice.contracts.clock import Clock


class SluiceSettings(BaseSettings):
    """Where Sluice keeps its state and which servers it talks to."""

    model_config = SettingsConfigDict(env_prefix="SLUICE_", extra="ignore", frozen=True)

    home: Path = Field(
        default=Path(".sluice"),
        description="Root of every embedded store (MLflow, ledger, caches, API keys).",
    )
    tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking URI (SLUICE_TRACKING_URI, else MLFLOW_TRACKING_URI); "
        "default SQLite under home.",
    )
    registry_uri: str | None = Field(
        default=None, description="MLflow registry URI when it differs from the tracking URI."
    )
    artifact_location: str | None = Field(
        default=None,
        description="Artifact root for new MLflow experiments; default home/mlartifacts.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the ledger, audit and review database; default SQLite "
        "under home.",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis (redis://host:port/db) for the event stream the orchestrator consumes; "
        "unset: events arrive only through the API and `sluice events import`.",
    )
    online_store_url: str | None = Field(
        default=None,
        description="The online feature store (Feast): sqlite:///PATH or "
        "redis://[:PASSWORD@]HOST:PORT/DB; default: Feast's SQLite store under home/online.",
    )
    events_stream: str = Field(
        default="sluice:events",
        description="Redis stream of incoming events (consumer group `sluice-orchestrator`).",
    )
    api_keys_file: Path | None = Field(
        default=None, description="The API keys file; default home/api-keys.json."
    )
    api_docs: bool = Field(
        default=False,
        description="Serve the interactive API documentation (/docs, /redoc) of the "
        "decision service; off by default. /openapi.json (the schema) is always served.",
    )
    experiment: str = Field(default="sluice", description="MLflow experiment for training runs.")
    model_name: str = Field(
        default="sluice-propensity", description="Registered model name of the propensity model."
    )
    promotion_floors: dict[str, float] = Field(
        default_factory=lambda: {"roc_auc": 0.65, "pr_auc": 0.05},
        description="Minimum validation metrics a version needs before it may become champion.",
    )
    promotion_ceilings: dict[str, float] = Field(
        default_factory=lambda: {"log_loss": 0.69},
        description="Maximum validation metrics (lower is better) for promotion.",
    )
    promotion_min_lift_over_baseline: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="When set, approval refuses a version whose validation ROC AUC is not at "
        "least this much above the best simple baseline recorded with it (unset: no check).",
    )
    drift_warn: float = Field(
        default=0.1,
        gt=0,
        description="PSI from which a feature or the score is reported as drifted.",
    )
    drift_block: float = Field(
        default=0.25,
        gt=0,
        description="PSI from which drift blocks promoting the model version to champion.",
    )
    clock_offset: timedelta = Field(
        default=timedelta(0),
        description="Moves Sluice's clock away from the system's (seconds or ISO 8601, e.g. "
        "P365D): business time (decision dates, validity, quiet hours, caps, review windows) "
        "runs that far ahead, or behind when negative. For rehearsals and tests.",
    )
    drift_block_on: Literal["score", "any"] = Field(
        default="score",
        description="What drift blocks promotion: the score's PSI only (features then warn), "
        "or any feature's too.",
    )

    @property
    def clock(self) -> Clock:
        """The clock every time-dependent rule reads (see :mod:`sluice.contracts.clock`)."""
        return Clock(offset=self.clock_offset)

    @property
    def home_dir(self) -> Path:
        """``home`` as an absolute path (not created)."""
        return self.home.expanduser().resolve()

    @property
    def effective_tracking_uri(self) -> str:
        if self.tracking_uri:
            return self.tracking_uri
        return f"sqlite:///{self.home_dir / 'mlflow.db'}"

    @property
    def effective_artifact_location(self) -> str:
        if self.artifact_location:
            return self.artifact_location
        return (self.home_dir / "mlartifacts").as_uri()

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home_dir / 'sluice.db'}"

    @property
    def keys_file(self) -> Path:
        """The API keys file (``api_keys_file``, else under home): absolute, its links
        kept (a Secret volume replaces the file behind its link on every update)."""
        if self.api_keys_file:
            return self.api_keys_file.expanduser().absolute()
        return self.home_dir / "api-keys.json"

    def path(self, *parts: str) -> Path:
        """A path under home, with its parent directory created."""
        p = self.home_dir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p


def get_settings() -> SluiceSettings:
    """Settings as the environment says now; for edges only (see the module docstring)."""
    settings = SluiceSettings()
    mlflow_uri = os.environ.get("MLFLOW_TRACKING_URI")  # MLflow's own variable, honoured too
    if settings.tracking_uri is None and mlflow_uri:
        settings = settings.model_copy(update={"tracking_uri": mlflow_uri})
    return settings
