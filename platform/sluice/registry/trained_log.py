"""Logging runs and registering versions: Sluice's trained models and brought ones.

:func:`log_trained` logs a training run (parameters, metrics, evaluation tables, the
contract and the LightGBM model with its drift reference); :func:`register_run` is the
tail both it and :func:`sluice.registry.external.log_external` end with: the registered
model, the version with its tags, and the alias pointed at it. MLflow is used through
its client only: the fluent API would point the whole process (and its
``MLFLOW_TRACKING_URI``) at this registry, and every later lookup with it.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sluice.registry.loaded import CONTRACT_FILE, REFERENCE_FILE
from sluice.registry.mlflow_setup import ensure_experiment
from sluice.registry.records import run_metrics, run_params, version_tags
from sluice.registry.uri import ModelURI

if TYPE_CHECKING:
    from sluice.registry.registry import Registry, VersionInfo
    from sluice.training.train import TrainedModel


def start_run(registry: Registry, run_name: str) -> Any:
    """A new run of Sluice's experiment."""
    settings = registry.settings
    experiment = ensure_experiment(
        registry.client, settings.experiment, settings.effective_artifact_location
    )
    return registry.client.create_run(experiment, run_name=run_name)


def register_run(
    registry: Registry, run: Any, name: str, tags: dict[str, str], alias: str
) -> VersionInfo:
    """Register the run's ``model`` artifacts as a new version of ``name`` with ``tags``,
    end the run, and point ``alias`` at the version."""
    from mlflow.exceptions import MlflowException

    client = registry.client
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    mv = client.create_model_version(
        name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id, tags=tags
    )
    client.set_model_version_tag(name, str(mv.version), "run_id", run.info.run_id)
    client.set_terminated(run.info.run_id)
    registry.set_alias(name, alias, str(mv.version))
    return registry.resolve(ModelURI(name, version=str(mv.version)))


def log_trained(registry: Registry, trained: TrainedModel, *, name: str, alias: str) -> VersionInfo:
    """Log a training run (params, metrics, tables, contract, model) and register it."""
    import lightgbm
    import mlflow.lightgbm
    from mlflow.entities import Metric, Param
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    client = registry.client
    signature = ModelSignature(
        inputs=Schema([ColSpec("double", n) for n in trained.contract.names]),
        outputs=Schema([ColSpec("double", "score")]),
    )
    run = start_run(registry, f"train-{trained.train_cutoff or 'features'}")
    run_id = run.info.run_id
    try:
        with tempfile.TemporaryDirectory() as tmp:
            stamp = int(time.time() * 1000)
            client.log_batch(
                run_id,
                metrics=[Metric(k, float(v), stamp, 0) for k, v in run_metrics(trained).items()],
                params=[Param(k, str(v)) for k, v in run_params(trained).items()],
            )
            for table, rows in trained.evaluation.tables().items():
                client.log_dict(run_id, {"rows": rows}, f"evaluation/{table}.json")
            contract_file = Path(tmp, CONTRACT_FILE)
            reference_file = Path(tmp, REFERENCE_FILE)
            contract_file.write_text(trained.contract.to_json())
            reference_file.write_text(trained.reference.model_dump_json())
            client.log_artifact(run_id, str(contract_file))
            model_dir = Path(tmp, "model")
            mlflow.lightgbm.save_model(
                trained.booster,
                str(model_dir),
                signature=signature,
                extra_files=[str(contract_file), str(reference_file)],
                pip_requirements=[f"lightgbm=={lightgbm.__version__}"],
            )
            client.log_artifacts(run_id, str(model_dir), "model")
        return register_run(registry, run, name, version_tags(trained), alias)
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
