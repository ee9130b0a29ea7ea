"""The human review queue: what a gate handed to a person, and that person's decision."""

from sluice.review.actions import approve, pending, reject

__all__ = ["approve", "pending", "reject"]
