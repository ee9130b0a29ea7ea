"""Bringing a model trained elsewhere: checked, then registered as ``challenger``.

``sluice models register --model-uri URI --contract FILE`` runs :func:`register_model`:
the model is fetched, its flavour found (:mod:`sluice.registry.flavors`), its signature
(when it has one) compared with the contract, and a trial predict made on rows the
contract allows, so that a model Sluice cannot score is refused now, not in the first
campaign. With ``--validation`` (a labelled feature table that satisfies the contract)
its metrics and drift reference are recorded as for Sluice's own models. From then on it
takes the same way as they do: approval on a held-out window in a person's name, canary,
guardrails and rollback.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from sluice.contracts.feature_contract import FeatureContract
from sluice.drift.reference import build_reference
from sluice.errors import InputError
from sluice.registry import LoadedModel, Registry, VersionInfo
from sluice.registry.external import fetch_model, log_external
from sluice.registry.flavors import Flavor, detect_flavor, signature_inputs
from sluice.scoring.flavor_predictors import not_probabilities, trial_matrix
from sluice.scoring.predictor import prepare_predictor
from sluice.training.dataset import read_labelled
from sluice.training.metrics import evaluate


@dataclass(frozen=True)
class Registration:
    info: VersionInfo
    flavor: Flavor
    metrics: dict[str, float] = field(default_factory=dict)


def _check_signature(directory: Path, contract: FeatureContract) -> None:
    names = signature_inputs(directory)
    if names is None or names == contract.names:
        return
    missing = [n for n in contract.names if n not in names]
    extra = [n for n in names if n not in contract.names]
    why = (
        f"the contract lacks {', '.join(extra)}"
        if extra
        else f"the model's signature lacks {', '.join(missing)}"
        if missing
        else "the columns are in another order"
    )
    raise InputError(
        f"contract: {contract.key} does not match the model's input signature ({why}); "
        f"the model takes {', '.join(names)}",
        field="contract",
    )


def register_model(
    registry: Registry,
    model_uri: str,
    contract: FeatureContract,
    *,
    name: str,
    num_gpus: float = 0.0,
    validation: Path | None = None,
) -> Registration:
    """Check the model at ``model_uri`` against ``contract`` and register it."""
    if num_gpus < 0:
        raise InputError("gpus: must be 0 or more", field="gpus")
    with tempfile.TemporaryDirectory() as tmp:
        directory = fetch_model(model_uri, registry, Path(tmp))
        flavor = detect_flavor(directory)
        _check_signature(directory, contract)
        candidate = LoadedModel.from_directory(
            directory, name=name, version="new", run_id="", contract=contract
        )
        cache = registry.settings.home_dir / "cache" / "compiled"
        predictor = prepare_predictor(candidate, "booster", cache).build()
        trial = trial_matrix(contract)
        try:
            scores = predictor.predict(trial)
        except Exception as exc:
            raise InputError(
                f"model-uri: the {flavor} model fails on rows contract {contract.key} allows: "
                f"{exc}",
                field="model-uri",
            ) from exc
        if not_probabilities(scores).any():
            raise InputError(
                f"model-uri: the {flavor} model returned {scores.tolist()} for rows contract "
                f"{contract.key} allows; scores must be probabilities in [0, 1]",
                field="model-uri",
            )
        metrics: dict[str, float] = {}
        reference = None
        if validation is not None:
            data = read_labelled(validation, contract)
            p = predictor.predict(data.X)
            metrics = evaluate(data.y, p).scalars()
            reference = build_reference(contract, data.X, p)
        info = log_external(
            registry,
            directory,
            contract,
            name=name,
            flavor=flavor,
            source=model_uri,
            num_gpus=num_gpus,
            metrics=metrics,
            reference=reference,
        )
    return Registration(info, flavor, metrics)
