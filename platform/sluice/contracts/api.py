"""Request and response bodies of the decision service's HTTP API."""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import (
    AwareDatetime,
    ConfigDict,
    Field,
    StringConstraints,
    create_model,
    model_validator,
)

from sluice.contracts._base import Contract, CustomerId
from sluice.contracts.decisions import DecisionContext
from sluice.contracts.feature_contract import FeatureContract

MAX_ROWS = 1_000


ModelAlias = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")]
"""A registry alias such as ``champion`` or ``challenger``."""


class ScoredRow(Contract):
    customer_id: CustomerId
    score: float = Field(ge=0, le=1)
    features_at: AwareDatetime | None = None
    """The feature timestamp of the online-store row that was scored (None: the request
    gave the features)."""
    stale_features: bool = False
    """The row was older than the contract's freshness limit and used because the request
    allowed it."""


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


_NULL: dict[str, Any] = {"type": "null"}


class _ScoreRequestBase(Contract):
    # The schema says what the validator checks: rows or customer_ids (OpenAPI clients
    # and fuzzers see it).
    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {
                    "required": ["rows"],
                    "properties": {
                        "rows": {"type": "array"},
                        "customer_ids": _NULL,
                        "at": _NULL,
                        "allow_stale": {"const": False},
                    },
                },
                {
                    "required": ["customer_ids"],
                    "properties": {"customer_ids": {"type": "array"}, "rows": _NULL},
                },
            ]
        }
    )

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        rows, ids = getattr(self, "rows", None), getattr(self, "customer_ids", None)
        if (rows is None) == (ids is None):
            raise ValueError("give rows (feature vectors) or customer_ids, not both")
        if rows is not None and (getattr(self, "at", None) or getattr(self, "allow_stale", False)):
            raise ValueError("at and allow_stale apply to customer_ids only")
        return self


def score_request_model(contract: FeatureContract) -> type[Contract]:
    """``{"rows": [FeatureVector, ...] | "customer_ids": [...], "model": alias}`` for
    ``contract``: explicit features, or ids whose features come from the online store."""
    vector = contract.vector_model()
    rows_type: Any = list[vector] | None  # type: ignore[valid-type]
    model: type[Contract] = create_model(
        "ScoreRequest",
        __base__=_ScoreRequestBase,
        rows=(
            rows_type,
            Field(
                default=None,
                min_length=1,
                max_length=MAX_ROWS,
                description="1 to 1,000 feature vectors.",
            ),
        ),
        customer_ids=(
            list[CustomerId] | None,
            Field(
                default=None,
                min_length=1,
                max_length=MAX_ROWS,
                description="1 to 1,000 customer ids, scored on their online-store features.",
            ),
        ),
        at=(
            AwareDatetime | None,
            Field(
                default=None,
                description="The request's time (default now): no feature dated after it is used.",
            ),
        ),
        allow_stale=(
            bool,
            Field(
                default=False,
                description="Use features older than the contract's "
                "freshness limit, flagged, instead of answering 409 stale_features.",
            ),
        ),
        model=(
            ModelAlias | None,
            Field(default=None, description="Alias to score with; default: the service's default."),
        ),
    )
    return model


class _DecideRequestBase(Contract):
    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {
                    "required": ["customer", "features"],
                    "properties": {
                        "customer": {"type": "object"},
                        "features": {"type": "object"},
                        "customer_id": _NULL,
                        "allow_stale": {"const": False},
                    },
                },
                {
                    "required": ["customer"],
                    "properties": {
                        "customer": {"type": "object"},
                        "features": _NULL,
                        "customer_id": _NULL,
                    },
                },
                {
                    "required": ["customer_id"],
                    "properties": {
                        "customer_id": {"type": "string"},
                        "customer": _NULL,
                        "features": _NULL,
                    },
                },
            ]
        }
    )

    @model_validator(mode="after")
    def _one_customer(self) -> Self:
        customer, cid = getattr(self, "customer", None), getattr(self, "customer_id", None)
        if (customer is None) == (cid is None):
            raise ValueError("give customer (a decision context) or customer_id, not both")
        if cid is not None and getattr(self, "features", None) is not None:
            raise ValueError("features need customer: customer_id alone reads the online store")
        if getattr(self, "features", None) is not None and getattr(self, "allow_stale", False):
            raise ValueError("allow_stale applies to features from the online store only")
        return self


def decide_request_model(contract: FeatureContract) -> type[Contract]:
    """``{"customer": DecisionContext, "features": Features, "model": alias}``; without
    ``features`` (or with ``customer_id`` alone) the features come from the online store
    by the customer's id."""
    features: Any = contract.vector_model(with_id=False) | None
    model: type[Contract] = create_model(
        "DecideRequest",
        __base__=_DecideRequestBase,
        customer=(DecisionContext | None, None),
        customer_id=(
            CustomerId | None,
            Field(
                default=None,
                description="A customer id alone: features and country from "
                "the online store, no consent on record (so no channel that needs one).",
            ),
        ),
        features=(features, None),
        allow_stale=(
            bool,
            Field(
                default=False,
                description="Use online features older than the contract's "
                "freshness limit, flagged, instead of answering 409 stale_features.",
            ),
        ),
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


class ApprovalAccepted(Contract):
    """An approval recorded (202): the orchestrator delivers the message; the status URL
    shows the item, whose ``result`` is set once it went through the gates and the
    ledger (``sent``, ``reserved``, ``deferred``, ``rejected``...)."""

    review: ReviewView
    status_url: str


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
