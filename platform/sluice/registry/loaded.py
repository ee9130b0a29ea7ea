"""A concrete model version, loaded: its flavour and files, feature contract, reference.

Sluice's own models, and LightGBM models brought by users, carry the model text (they
compile to C); every other flavour is scored from its MLflow directory
(:mod:`sluice.scoring.flavor_predictors`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import lightgbm as lgb

from sluice.contracts.feature_contract import FeatureContract
from sluice.drift.reference import Reference
from sluice.registry.flavors import Flavor, detect_flavor, lightgbm_text

EXTRA = "extra_files"
"""Where a model directory keeps Sluice's files beside the model."""
CONTRACT_FILE = "feature_contract.json"
REFERENCE_FILE = "reference.json"
NUM_GPUS_TAG = "resources.num_gpus"
"""The version tag: GPUs each batch-scoring actor asks for."""


@dataclass(frozen=True)
class LoadedModel:
    """Everything needed to score with one registered version, picklable for Ray."""

    name: str
    version: str
    run_id: str
    model_text: str = field(repr=False)
    """LightGBM model text; empty for other flavours."""
    contract: FeatureContract = field(repr=False)
    reference: Reference | None = field(default=None, repr=False)
    flavor: Flavor = "lightgbm"
    directory: str | None = None
    """The local MLflow model directory (None for a model built in memory)."""
    num_gpus: float = 0.0
    """GPUs each batch-scoring actor asks for (registered with the version)."""

    @cached_property
    def digest(self) -> str:
        """SHA-256 of the model (its text, or every file of its directory): the cache key
        of compiled predictors."""
        sha = hashlib.sha256(self.model_text.encode())
        if self.flavor != "lightgbm" and self.directory is not None:
            root = Path(self.directory)
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                sha.update(str(path.relative_to(root)).encode())
                sha.update(path.read_bytes())
        return sha.hexdigest()

    @property
    def label(self) -> str:
        return f"{self.name}/{self.version}"

    def booster(self) -> lgb.Booster:
        if self.flavor != "lightgbm":
            raise TypeError(f"{self.label} is a {self.flavor} model, not a LightGBM booster")
        return lgb.Booster(model_str=self.model_text)

    @classmethod
    def from_directory(
        cls,
        directory: Path,
        *,
        name: str,
        version: str,
        run_id: str,
        num_gpus: float = 0.0,
        contract: FeatureContract | None = None,
    ) -> LoadedModel:
        """Read a downloaded MLflow model directory (the model plus Sluice's extra files;
        ``contract``: the one to use for a model not registered yet, which has none)."""
        extra = directory / EXTRA
        reference = extra / REFERENCE_FILE
        flavor = detect_flavor(directory)
        return cls(
            name=name,
            version=version,
            run_id=run_id,
            model_text=lightgbm_text(directory) if flavor == "lightgbm" else "",
            flavor=flavor,
            directory=str(directory),
            num_gpus=num_gpus,
            contract=contract or FeatureContract.from_json((extra / CONTRACT_FILE).read_text()),
            reference=Reference.model_validate_json(reference.read_text())
            if reference.exists()
            else None,
        )
