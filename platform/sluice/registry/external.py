"""Models trained elsewhere: fetched from any MLflow model URI, stored as versions.

:func:`fetch_model` copies the model's directory here; :func:`log_external` logs it as a
run of Sluice's experiment with the feature contract (and, when known, the validation
metrics and drift reference) beside it, registers a version and points ``challenger`` at
it, exactly as :meth:`Registry.register` does for Sluice's own models. The checks in
between (flavour, signature, a trial predict) are :mod:`sluice.approval.register`'s.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from sluice.contracts.feature_contract import FeatureContract
from sluice.drift.reference import Reference
from sluice.errors import InputError
from sluice.registry.loaded import CONTRACT_FILE, EXTRA, NUM_GPUS_TAG, REFERENCE_FILE
from sluice.registry.registry import CHALLENGER, Registry, VersionInfo
from sluice.registry.trained_log import register_run, start_run


def fetch_model(model_uri: str, registry: Registry, into: Path) -> Path:
    """Copy the MLflow model at ``model_uri`` (a path, ``file:``, ``runs:/``, or any
    artifact store MLflow reads) into the directory ``into``; returns the model directory."""
    import mlflow

    local = Path(model_uri).expanduser()
    if local.is_dir():
        target = into / "model"
        shutil.copytree(local, target)
        return target
    try:
        fetched = mlflow.artifacts.download_artifacts(
            artifact_uri=model_uri,
            dst_path=str(into),
            tracking_uri=registry.settings.effective_tracking_uri,
        )
    except Exception as exc:
        raise InputError(f"model-uri: cannot fetch {model_uri}: {exc}", field="model-uri") from exc
    return Path(fetched)


def log_external(
    registry: Registry,
    directory: Path,
    contract: FeatureContract,
    *,
    name: str,
    flavor: str,
    source: str,
    num_gpus: float = 0.0,
    metrics: dict[str, float] | None = None,
    reference: Reference | None = None,
    alias: str = CHALLENGER,
) -> VersionInfo:
    """Log the checked model directory as a run, register it, point ``alias`` at it."""
    from mlflow.entities import Metric, Param

    client = registry.client
    run = start_run(registry, f"register-{name}")
    run_id = run.info.run_id
    try:
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = Path(tmp, "model")
            shutil.copytree(directory, model_dir)
            extra = model_dir / EXTRA
            extra.mkdir(exist_ok=True)
            (extra / CONTRACT_FILE).write_text(contract.to_json())
            if reference is not None:
                (extra / REFERENCE_FILE).write_text(reference.model_dump_json())
            stamp = int(time.time() * 1000)
            client.log_batch(
                run_id,
                metrics=[Metric(k, float(v), stamp, 0) for k, v in (metrics or {}).items()],
                params=[
                    Param("source", source[:500]),
                    Param("flavor", flavor),
                    Param("feature_contract", contract.key),
                    Param("num_gpus", str(num_gpus)),
                ],
            )
            client.log_artifact(run_id, str(extra / CONTRACT_FILE))
            client.log_artifacts(run_id, str(model_dir), "model")
        tags = {
            "feature_contract": contract.key,
            "feature_contract_digest": contract.digest(),
            "flavor": flavor,
            "source": source[:500],
            NUM_GPUS_TAG: str(num_gpus),
            **{f"metric.{k}": f"{v:.6f}" for k, v in (metrics or {}).items()},
        }
        return register_run(registry, run, name, tags, alias)
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
