"""The versioned feature contract: one definition of every model feature.

Training, batch scoring and online scoring all read features through a
:class:`FeatureContract`. It says, per feature, the kind (float, int, category), the
allowed range or categories and what a null means; it converts to a pyarrow schema,
validates whole Arrow batches at once (:meth:`FeatureContract.validate_batch`), builds
the pydantic model of one online feature vector (:meth:`FeatureContract.vector_model`)
and encodes rows into the float64 matrix the model was trained on. Categories are
encoded as their index in ``categories``; nulls the contract allows become NaN, which
LightGBM treats as missing.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from enum import StrEnum
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from sluice.contracts._base import Contract
from sluice.errors import InputError

if TYPE_CHECKING:
    from sluice.contracts.arrow_validation import ValidatedBatch


class FeatureKind(StrEnum):
    """How a feature is stored and checked."""

    FLOAT = "float"
    INT = "int"
    CATEGORY = "category"


class NullPolicy(StrEnum):
    """What a null (or NaN) value means for a feature."""

    REJECT = "reject"
    """A null quarantines the row."""
    MISSING = "missing"
    """A null is passed to the model as a missing value."""


class Direction(StrEnum):
    """How the predicted probability may move when a feature alone increases."""

    INCREASING = "increasing"
    """Never down: the model is trained with a monotone increasing constraint."""
    DECREASING = "decreasing"
    """Never up: the model is trained with a monotone decreasing constraint."""


class FeatureSpec(Contract):
    """One model feature."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)
    """Column name in feature tables and field name in online requests."""
    kind: FeatureKind
    """float, int or category."""
    description: str = Field(min_length=1)
    """What the feature measures, including its time window."""
    min: float | None = None
    """Smallest allowed value (inclusive), numeric kinds only."""
    max: float | None = None
    """Largest allowed value (inclusive), numeric kinds only."""
    categories: tuple[str, ...] = ()
    """Allowed values of a category feature; the model sees the index."""
    nulls: NullPolicy = NullPolicy.REJECT
    """Whether a null quarantines the row or reaches the model as missing."""
    direction: Direction | None = None
    """Optional: the model's score may only rise (``increasing``) or only fall
    (``decreasing``) as this feature alone increases; training applies it as a monotone
    constraint. A training hint, not a rule on the data: it is left out of the digest."""

    @model_validator(mode="after")
    def _consistent(self) -> FeatureSpec:
        if self.kind is FeatureKind.CATEGORY:
            if not self.categories:
                raise ValueError(f"{self.name}: a category feature needs categories")
            if self.direction is not None:
                raise ValueError(f"{self.name}: direction applies to numeric features only")
            if len(set(self.categories)) != len(self.categories):
                raise ValueError(f"{self.name}: categories must be unique")
            if self.min is not None or self.max is not None:
                raise ValueError(f"{self.name}: min/max apply to numeric features only")
        elif self.categories:
            raise ValueError(f"{self.name}: categories apply to category features only")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"{self.name}: min {self.min} is above max {self.max}")
        return self

    @property
    def arrow_type(self) -> pa.DataType:
        """The column type of this feature in feature tables."""
        return {
            FeatureKind.FLOAT: pa.float64(),
            FeatureKind.INT: pa.int64(),
            FeatureKind.CATEGORY: pa.string(),
        }[self.kind]

    def encode(self, value: Any) -> float:
        """One already-validated value as the float the model sees."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return math.nan
        if self.kind is FeatureKind.CATEGORY:
            return float(self.categories.index(str(value)))
        return float(value)


class FeatureContract(Contract):
    """A named, versioned set of features with the rules every row must meet."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    """Contract name, such as ``propensity``."""
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    """Semantic version; a model records the version it was trained on."""
    id_column: str = "customer_id"
    """Column holding the opaque customer id."""
    features: tuple[FeatureSpec, ...] = Field(min_length=1)
    """Features in model input order."""
    max_age_hours: float = Field(default=48.0, gt=0, le=24 * 366)
    """Freshness limit of online features: a row whose feature timestamp is older than this
    when a decision is made is stale (refused, or used and flagged when the request says
    so). The default tolerates one missed nightly build."""

    @model_validator(mode="after")
    def _unique_names(self) -> FeatureContract:
        names = [f.name for f in self.features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"features: duplicate names {dupes}")
        if self.id_column in names:
            raise ValueError(f"features: {self.id_column!r} is the id column, not a feature")
        return self

    @property
    def key(self) -> str:
        """``name@version``, as recorded with models and scores."""
        return f"{self.name}@{self.version}"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def categorical_indices(self) -> list[int]:
        """Positions of category features in the model input."""
        return [i for i, f in enumerate(self.features) if f.kind is FeatureKind.CATEGORY]

    @property
    def monotone_constraints(self) -> list[int]:
        """LightGBM's ``monotone_constraints``: 1, -1 or 0 (none) per feature, in order."""
        sign = {Direction.INCREASING: 1, Direction.DECREASING: -1, None: 0}
        return [sign[f.direction] for f in self.features]

    def spec(self, name: str) -> FeatureSpec:
        for f in self.features:
            if f.name == name:
                return f
        raise InputError(f"{name}: not a feature of contract {self.key}", field=name)

    def digest(self) -> str:
        """SHA-256 of the canonical JSON form without the training hints (``direction``):
        equal digests, equal data rules (what is valid and how it is encoded)."""
        rules = self.model_dump(mode="json", exclude={"features": {"__all__": {"direction"}}})
        canonical = json.dumps(rules, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def arrow_schema(self) -> pa.Schema:
        """Schema of a feature table: the id column, then every feature."""
        fields = [pa.field(self.id_column, pa.string(), nullable=False)]
        fields += [pa.field(f.name, f.arrow_type, nullable=True) for f in self.features]
        return pa.schema(fields, metadata={b"sluice.feature_contract": self.key.encode()})

    def validate_batch(self, batch: pa.Table | pa.RecordBatch) -> ValidatedBatch:
        """Check a whole batch at once; see :func:`sluice.contracts.arrow_validation`."""
        from sluice.contracts.arrow_validation import validate_batch

        return validate_batch(self, batch)

    def encode_rows(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Validated rows (mappings of feature name to value) as the model's float64 matrix."""
        out = np.empty((len(rows), len(self.features)), dtype=np.float64)
        for i, row in enumerate(rows):
            for j, spec in enumerate(self.features):
                out[i, j] = spec.encode(row.get(spec.name))
        return out

    @cached_property
    def _vector_models(self) -> dict[bool, type[Contract]]:
        from sluice.contracts.feature_vector import build_vector_model

        return {
            True: build_vector_model(self, with_id=True),
            False: build_vector_model(self, with_id=False),
        }

    def vector_model(self, *, with_id: bool = True) -> type[Contract]:
        """The pydantic model of one online feature vector under this contract (with the id
        column, or without it where the id is given elsewhere in the request)."""
        return self._vector_models[with_id]

    def to_json(self) -> str:
        """The stored form; a feature without a direction is written as before directions
        existed, so contracts without one read the same everywhere."""
        data = self.model_dump(mode="json")
        for feature in data["features"]:
            if feature["direction"] is None:
                del feature["direction"]
        return json.dumps(data, indent=2)

    @classmethod
    def from_json(cls, text: str | bytes) -> FeatureContract:
        return cls.model_validate_json(text)
