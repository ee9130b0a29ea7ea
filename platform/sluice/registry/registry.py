"""The model registry on MLflow: register, resolve aliases, load, promote.

Aliases (``champion``, ``challenger``) are resolved once to a concrete version; every
consumer then records and serves that version. Downloaded versions are cached under
``SLUICE_HOME/cache/models`` (versions are immutable, so the cache never goes stale).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sluice.errors import ModelNotFoundError, PromotionRefusedError
from sluice.registry.loaded import CONTRACT_FILE, REFERENCE_FILE, LoadedModel
from sluice.registry.mlflow_setup import ensure_experiment, mlflow_client
from sluice.registry.promotion import MetricCheck, check_metrics
from sluice.registry.records import recorded_baselines, run_metrics, run_params, version_tags
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
            num_gpus=float(info.tags.get("resources.num_gpus", 0) or 0),
        )

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
        import mlflow.lightgbm
        from mlflow.entities import Metric, Param
        from mlflow.exceptions import MlflowException
        from mlflow.models import ModelSignature
        from mlflow.types import ColSpec, Schema

        model_name = name or self.settings.model_name
        client = self.client
        experiment = ensure_experiment(
            client, self.settings.experiment, self.settings.effective_artifact_location
        )
        signature = ModelSignature(
            inputs=Schema([ColSpec("double", n) for n in trained.contract.names]),
            outputs=Schema([ColSpec("double", "score")]),
        )
        # Client calls only: MLflow's fluent API would point the whole process (and its
        # MLFLOW_TRACKING_URI) at this registry, and every later lookup with it.
        run = client.create_run(experiment, run_name=f"train-{trained.train_cutoff or 'features'}")
        run_id = run.info.run_id
        try:
            with tempfile.TemporaryDirectory() as tmp:
                stamp = int(time.time() * 1000)
                metrics = run_metrics(trained)
                client.log_batch(
                    run_id,
                    metrics=[Metric(k, float(v), stamp, 0) for k, v in metrics.items()],
                    params=[Param(k, str(v)) for k, v in run_params(trained).items()],
                )
                for table, rows in trained.evaluation.tables().items():
                    client.log_dict(run_id, {"rows": rows}, f"evaluation/{table}.json")
                contract_file = Path(tmp, CONTRACT_FILE)
                reference_file = Path(tmp, REFERENCE_FILE)
                contract_file.write_text(trained.contract.to_json())
                reference_file.write_text(trained.reference.model_dump_json())
                client.log_artifact(run_id, str(contract_file))
                import lightgbm

                model_dir = Path(tmp, "model")
                mlflow.lightgbm.save_model(
                    trained.booster,
                    str(model_dir),
                    signature=signature,
                    extra_files=[str(contract_file), str(reference_file)],
                    pip_requirements=[f"lightgbm=={lightgbm.__version__}"],
                )
                client.log_artifacts(run_id, str(model_dir), "model")
            tags = version_tags(trained)
            try:
                client.create_registered_model(model_name)
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            mv = client.create_model_version(
                model_name, f"{run.info.artifact_uri}/model", run_id=run_id, tags=tags
            )
            client.set_model_version_tag(model_name, str(mv.version), "run_id", run_id)
        except BaseException:
            client.set_terminated(run_id, "FAILED")
            raise
        client.set_terminated(run_id)
        self.set_alias(model_name, alias, str(mv.version))
        return self.resolve(ModelURI(model_name, version=str(mv.version)))

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
