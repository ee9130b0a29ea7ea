"""Request and response bodies of the decision service's HTTP API."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints, create_model

from sluice.contracts._base import Contract, CustomerId
from sluice.contracts.decisions import DecisionContext
from sluice.contracts.feature_contract import FeatureContract

MAX_ROWS = 1_000


ModelAlias = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")]
"""A registry alias such as ``champion`` or ``challenger``."""


class ScoredRow(Contract):
    customer_id: CustomerId
    score: float = Field(ge=0, le=1)


class ScoreResponse(Contract):
    """Scores of one request, all from the one model version named here."""

    model_name: str
    model_version: str
    scores: tuple[ScoredRow, ...]


class ServedModel(Contract):
    """A model the service is configured to serve."""

    uri: str
    """``NAME@ALIAS`` as configured."""
    alias: str
    name: str
    version: str | None
    """The version loaded now; None while the alias cannot be resolved."""
    loaded: bool
    predictor: str | None = None
    feature_contract: str | None = None
    error: str | None = None
    """Why the model is not loaded, when it is not."""


class ModelsResponse(Contract):
    default_alias: str
    models: tuple[ServedModel, ...]


class Health(Contract):
    status: str
    detail: str = ""


def score_request_model(contract: FeatureContract) -> type[Contract]:
    """``{"rows": [FeatureVector, ...], "model": alias}`` for ``contract``."""
    vector = contract.vector_model()
    model: type[Contract] = create_model(
        "ScoreRequest",
        __base__=Contract,
        rows=(
            list[vector],  # type: ignore[valid-type]
            Field(min_length=1, max_length=MAX_ROWS, description="1 to 1,000 feature vectors."),
        ),
        model=(
            ModelAlias | None,
            Field(default=None, description="Alias to score with; default: the service's default."),
        ),
    )
    return model


def decide_request_model(contract: FeatureContract) -> type[Contract]:
    """``{"customer": DecisionContext, "features": Features, "model": alias}``; the customer
    id is given once, in ``customer``."""
    features = contract.vector_model(with_id=False)
    model: type[Contract] = create_model(
        "DecideRequest",
        __base__=Contract,
        customer=(DecisionContext, ...),
        features=(features, ...),
        model=(ModelAlias | None, None),
    )
    return model


class ReviewView(Contract):
    """One item of the review queue, as the admin API shows it."""

    review_id: str
    run_id: str
    campaign_id: str
    customer_id: str
    channel: str
    offer_id: str | None
    gate: str
    reason: str
    detail: str | None
    status: str
    decided_by: str | None
    decided_at: str | None
    note: str | None
    result: str | None
    expires_at: str
    created_at: str
    message: dict[str, object] = Field(default_factory=dict)
    """The copy and the fields a reviewer needs (subject, body, text, score, first name)."""


class ReviewList(Contract):
    items: tuple[ReviewView, ...]


VISIBLE = r"[^\s\x00-\x1f\x7f]"
"""At least one visible character: what a name or a reason must contain."""
Reviewer = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128, pattern=VISIBLE)
]


class ApproveRequest(Contract):
    by: Reviewer


class RejectRequest(Contract):
    by: Reviewer
    reason: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=2000, pattern=VISIBLE),
    ]
