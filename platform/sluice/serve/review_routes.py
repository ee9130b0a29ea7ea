"""The review queue's routes under ``/v1/admin/reviews`` (admin scope): list, show,
approve and reject. An approval is recorded and answered with 202 and the item's status
URL; the orchestrator delivers it (the other gates, the ledger, then the channel), so no
request builds a transport."""

# No ``from __future__ import annotations``: FastAPI reads the route signatures.

from typing import Any

from fastapi import FastAPI, Query, Request, Response

from sluice.contracts.api import (
    ApprovalAccepted,
    ApproveRequest,
    RejectRequest,
    ReviewList,
    ReviewView,
)
from sluice.settings import SluiceSettings
from sluice.store.reviews import ReviewItem


def _review_view(item: ReviewItem) -> ReviewView:
    return ReviewView(**item.summary(), message=item.copy())


def add_review_routes(
    api: FastAPI, admin_key: Any, errors: dict[int | str, dict[str, Any]], settings: SluiceSettings
) -> None:
    """The review queue under ``/v1/admin/reviews`` (admin scope). The handlers are
    synchronous (database reads and writes): FastAPI runs them in its thread pool."""
    from sluice.review import actions

    clock, url = settings.clock, settings.effective_database_url

    def list_reviews(
        _: admin_key,
        run: str | None = None,
        status: str = "pending",
        limit: int = Query(default=100, ge=1, le=1000),
    ) -> ReviewList:
        items = actions.pending(url, run, None if status == "all" else status, limit, clock)
        return ReviewList(items=tuple(_review_view(i) for i in items))

    def get_review(review_id: str, _: admin_key) -> ReviewView:
        return _review_view(actions.show(review_id, url, clock))

    def approve_review(
        review_id: str,
        body: ApproveRequest,
        _: admin_key,
        request: Request,
        response: Response,
    ) -> ApprovalAccepted:
        item = actions.approve_later(review_id, body.by, url, clock)
        status_url = str(request.url_for("get_review", review_id=review_id).path)
        response.headers["Location"] = status_url
        return ApprovalAccepted(review=_review_view(item), status_url=status_url)

    def reject_review(
        review_id: str,
        body: RejectRequest,
        _: admin_key,
    ) -> ReviewView:
        return _review_view(actions.reject(review_id, body.by, body.reason, url, clock))

    api.get(
        "/v1/admin/reviews",
        response_model=ReviewList,
        responses=errors,
        summary="Messages waiting for a person",
    )(list_reviews)
    api.get(
        "/v1/admin/reviews/{review_id}",
        response_model=ReviewView,
        responses=errors,
        summary="One review item",
    )(get_review)
    api.post(
        "/v1/admin/reviews/{review_id}/approve",
        response_model=ApprovalAccepted,
        status_code=202,
        responses=errors,
        summary="Approve; the orchestrator delivers (other gates, ledger, channel)",
    )(approve_review)
    api.post(
        "/v1/admin/reviews/{review_id}/reject",
        response_model=ReviewView,
        responses=errors,
        summary="Reject, with who and why",
    )(reject_review)


__all__ = ["add_review_routes"]
