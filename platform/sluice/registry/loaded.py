"""A concrete model version, loaded: LightGBM model text, feature contract, reference."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import lightgbm as lgb

from sluice.contracts.feature_contract import FeatureContract
from sluice.drift.reference import Reference

MODEL_FILE = "model.lgb"
CONTRACT_FILE = "feature_contract.json"
REFERENCE_FILE = "reference.json"


@dataclass(frozen=True)
class LoadedModel:
    """Everything needed to score with one registered version, picklable for Ray."""

    name: str
    version: str
    run_id: str
    model_text: str = field(repr=False)
    contract: FeatureContract = field(repr=False)
    reference: Reference | None = field(default=None, repr=False)

    @cached_property
    def digest(self) -> str:
        """SHA-256 of the model text: the cache key of compiled predictors."""
        return hashlib.sha256(self.model_text.encode()).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.name}/{self.version}"

    def booster(self) -> lgb.Booster:
        return lgb.Booster(model_str=self.model_text)

    @classmethod
    def from_directory(
        cls, directory: Path, *, name: str, version: str, run_id: str
    ) -> LoadedModel:
        """Read a downloaded MLflow model directory (``model.lgb`` plus extra files)."""
        extra = directory / "extra_files"
        reference = extra / REFERENCE_FILE
        return cls(
            name=name,
            version=version,
            run_id=run_id,
            model_text=(directory / MODEL_FILE).read_text(),
            contract=FeatureContract.from_json((extra / CONTRACT_FILE).read_text()),
            reference=Reference.model_validate_json(reference.read_text())
            if reference.exists()
            else None,
        )
