"""The pydantic model of one online feature vector, generated from a feature contract.

Online requests are checked against exactly the rules batch scoring applies: numeric
ranges become ``ge``/``le`` constraints, categories a ``Literal``, and a feature whose
nulls are rejected becomes a required field. The generated model forbids unknown
fields, so a typo in a feature name is a 422 naming that field.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, create_model

from sluice.contracts._base import Contract, CustomerId
from sluice.contracts.feature_contract import FeatureKind, NullPolicy

if TYPE_CHECKING:
    from sluice.contracts.feature_contract import FeatureContract, FeatureSpec


def _field_type(spec: FeatureSpec) -> Any:
    if spec.kind is FeatureKind.CATEGORY:
        base: Any = Literal[spec.categories]
        return Annotated[base, Field(description=spec.description)]
    python_type: type = int if spec.kind is FeatureKind.INT else float
    return Annotated[
        python_type,
        Field(ge=spec.min, le=spec.max, allow_inf_nan=False, description=spec.description),
    ]


def build_vector_model(contract: FeatureContract, *, with_id: bool = True) -> type[Contract]:
    """A model named ``FeatureVector`` (``Features`` without the id) with every feature of
    ``contract``."""
    fields: dict[str, Any] = {}
    if with_id:
        fields[contract.id_column] = (CustomerId, Field(description="Opaque customer id."))
    for spec in contract.features:
        typ = _field_type(spec)
        if spec.nulls is NullPolicy.MISSING:
            fields[spec.name] = (typ | None, None)
        else:
            fields[spec.name] = (typ, ...)
    model: type[Contract] = create_model(
        "FeatureVector" if with_id else "Features",
        __base__=Contract,
        __doc__=f"One customer's features under contract {contract.key}.",
        **fields,
    )
    return model
