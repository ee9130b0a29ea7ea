"""The model registry on MLflow: register, resolve aliases, load, promote.

Aliases (``champion``, ``challenger``) are resolved once to a concrete version; every
consumer then records and serves that version. Downloaded versions are cached under
``SLUICE_HOME/cache/models`` (versions are immutable, so the cache never goes stale).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sluice.contracts.feature_contract import FeatureContract
from sluice.errors import ModelNotFoundError, PromotionRefusedError
from sluice.registry.loaded import CONTRACT_FILE, EXTRA, NUM_GPUS_TAG, LoadedModel
from sluice.registry.mlflow_setup import mlflow_client
from sluice.registry.promotion import MetricCheck, check_metrics
from sluice.registry.records import recorded_baselines
from sluice.registry.uri import ModelURI
from sluice.settings import SluiceSettings

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from sluice.training.train import TrainedModel

CHAMPION, CHALLENGER = "champion", "challenger"


@dataclass(frozen=True)
class VersionInfo:
    """One registered version as the registry describes it."""

    name: str
    version: str
    run_id: str
    aliases: tuple[str, ...]
    created_at: datetime
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, float]:
        """Validation metrics recorded at registration (``metric.*`` tags)."""
        return {
            k.removeprefix("metric."): float(v)
            for k, v in self.tags.items()
            if k.startswith("metric.")
        }

    @property
    def baselines(self) -> dict[str, dict[str, float]]:
        """Baselines' validation metrics recorded at registration, by baseline name."""
        return recorded_baselines(self.tags)


def _info(mv: ModelVersion) -> VersionInfo:
    return VersionInfo(
        name=mv.name,
        version=str(mv.version),
        run_id=mv.run_id or "",
        aliases=tuple(sorted(mv.aliases or ())),
        created_at=datetime.fromtimestamp((mv.creation_timestamp or 0) / 1000, tz=UTC),
        tags=dict(mv.tags or {}),
    )


def _local_path(uri: str) -> Path | None:
    """The directory a ``file:`` (or plain path) artifact URI names, if it exists here."""
    from urllib.parse import unquote, urlparse

    parsed = urlparse(uri)
    if parsed.scheme not in ("", "file") or parsed.netloc not in ("", "localhost"):
        return None
    path = Path(unquote(parsed.path))
    return path if path.is_dir() else None


class Registry:
    """Sluice's view of the MLflow model registry."""

    def __init__(self, settings: SluiceSettings) -> None:
        self.settings = settings
        self._client: MlflowClient | None = None

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = mlflow_client(self.settings)
        return self._client

    def resolve(self, uri: str | ModelURI) -> VersionInfo:
        """The concrete version an alias or version reference points at now."""
        from mlflow.exceptions import MlflowException

        ref = uri if isinstance(uri, ModelURI) else ModelURI.parse(uri)
        try:
            if ref.alias:
                mv = self.client.get_model_version_by_alias(ref.name, ref.alias)
            else:
                mv = self.client.get_model_version(ref.name, str(ref.version))
        except MlflowException as exc:
            what = f"alias {ref.alias!r}" if ref.alias else f"version {ref.version}"
            raise ModelNotFoundError(
                f"model {ref.name!r} has no {what}", field="model", model=str(ref)
            ) from exc
        return _info(mv)

    def load(self, uri: str | ModelURI) -> LoadedModel:
        """Resolve ``uri`` and load that version (from the local cache when present)."""
        info = self.resolve(uri)
        cache = self.settings.home_dir / "cache" / "models" / info.name / info.version
        if not (cache / "MLmodel").exists():
            import mlflow

            cache.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=cache.parent, prefix=f".{info.version}-"))
            # The version's own artifact location, through this registry's client: a
            # ``models:/`` URI would be resolved against MLflow's process-wide registry.
            source = self.client.get_model_version_download_uri(info.name, info.version)
            local = _local_path(source)
            if local is not None:  # a file artifact store: copied, not downloaded
                shutil.copytree(local, staging / "model")
                local = staging / "model"
            else:
                local = Path(
                    mlflow.artifacts.download_artifacts(
                        artifact_uri=source,
                        dst_path=str(staging),
                        tracking_uri=self.settings.effective_tracking_uri,
                    )
                )
            # Another process may have finished first: its copy is identical.
            with contextlib.suppress(OSError):
                local.rename(cache)
            shutil.rmtree(staging, ignore_errors=True)
        return LoadedModel.from_directory(
            cache,
            name=info.name,
            version=info.version,
            run_id=info.run_id,
            num_gpus=float(info.tags.get(NUM_GPUS_TAG, 0) or 0),
        )

    def contract(self, uri: str | ModelURI) -> FeatureContract:
        """The stored feature contract of the version ``uri`` resolves to, read without
        the model's files (for a model another deployment serves, or an app's schema)."""
        info = self.resolve(uri)
        cached = self.settings.home_dir / "cache" / "models" / info.name / info.version
        if (cached / "MLmodel").exists():
            return FeatureContract.from_json((cached / EXTRA / CONTRACT_FILE).read_text())
        source = self.client.get_model_version_download_uri(info.name, info.version)
        local = _local_path(source)
        if local is not None:
            return FeatureContract.from_json((local / EXTRA / CONTRACT_FILE).read_text())
        import mlflow

        with tempfile.TemporaryDirectory() as tmp:
            path = mlflow.artifacts.download_artifacts(
                artifact_uri=f"{source.rstrip('/')}/{EXTRA}/{CONTRACT_FILE}",
                dst_path=tmp,
                tracking_uri=self.settings.effective_tracking_uri,
            )
            return FeatureContract.from_json(Path(path).read_text())

    def versions(self, name: str | None = None) -> list[VersionInfo]:
        """Every version of ``name`` (default: the configured model), newest first."""
        from mlflow.exceptions import MlflowException

        model = name or self.settings.model_name
        try:
            aliases = dict(self.client.get_registered_model(model).aliases or {})
        except MlflowException as exc:
            raise ModelNotFoundError(f"no registered model named {model!r}", field="name") from exc
        found = [_info(mv) for mv in self.client.search_model_versions(f"name = '{model}'")]
        # Search results do not carry aliases; the registered model does.
        held = {
            v.version: tuple(sorted(a for a, av in aliases.items() if str(av) == v.version))
            for v in found
        }
        versions = [replace(v, aliases=held[v.version]) for v in found]
        return sorted(versions, key=lambda v: int(v.version), reverse=True)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        """Point ``alias`` at ``version``, remembering the versions it pointed at before."""
        history = self.alias_history(name, alias)
        self.client.set_registered_model_alias(name, alias, version)
        if not history or history[-1] != version:
            history = [*history, version][-50:]
            self.client.set_registered_model_tag(name, f"alias_history.{alias}", ",".join(history))

    def alias_history(self, name: str, alias: str) -> list[str]:
        """Versions ``alias`` has pointed at, oldest first (the last is the current one)."""
        from mlflow.exceptions import MlflowException

        try:
            tags = dict(self.client.get_registered_model(name).tags or {})
        except MlflowException:
            return []
        raw = tags.get(f"alias_history.{alias}", "")
        return [v for v in raw.split(",") if v]

    def register(
        self, trained: TrainedModel, *, name: str | None = None, alias: str = CHALLENGER
    ) -> VersionInfo:
        """Log a training run (params, metrics, tables, contract, model) and register it."""
        from sluice.registry.trained_log import log_trained

        return log_trained(self, trained, name=name or self.settings.model_name, alias=alias)

    def promote(
        self,
        version: str,
        *,
        to: str = CHAMPION,
        name: str | None = None,
        floors: dict[str, float] | None = None,
        ceilings: dict[str, float] | None = None,
        by: str | None = None,
        metrics: dict[str, float] | None = None,
    ) -> list[MetricCheck]:
        """Point ``to`` at ``version`` if it meets every floor and ceiling; else refuse.

        ``champion`` also needs a named approver (``by``); the checks use ``metrics``
        (from a held-out window, see :func:`sluice.approval.approve`) or else
        the validation metrics recorded at registration."""
        model_name = name or self.settings.model_name
        info = self.resolve(ModelURI(model_name, version=version))
        if to == CHAMPION and not (by and by.strip()):
            raise PromotionRefusedError(
                f"version {version} of {model_name}: promotion to champion needs a named "
                "approver (sluice models approve VERSION --by NAME)",
                field="by",
            )
        checks = check_metrics(
            metrics if metrics is not None else info.metrics,
            self.settings.promotion_floors if floors is None else floors,
            self.settings.promotion_ceilings if ceilings is None else ceilings,
        )
        failed = [c for c in checks if not c.passed]
        if failed:
            raise PromotionRefusedError(
                f"version {version} of {model_name} does not meet the promotion policy: "
                + "; ".join(c.describe() for c in failed),
                field="version",
                checks=[c.describe() for c in checks],
            )
        previous = None
        if to == CHAMPION:
            try:
                previous = self.resolve(ModelURI(model_name, alias=CHAMPION)).version
            except ModelNotFoundError:
                previous = None
        self.set_alias(model_name, to, version)
        now = datetime.now(UTC).isoformat()
        self.client.set_model_version_tag(model_name, version, f"promoted.{to}_at", now)
        if by:
            self.client.set_model_version_tag(model_name, version, f"promoted.{to}_by", by)
        if previous and previous != version:
            self.client.set_model_version_tag(
                model_name, version, f"promoted.{to}_previous", previous
            )
        return checks
