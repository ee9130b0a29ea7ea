"""The campaign funnel's stages, in display order, each with the stage it comes from.

A stage's share in the report is its count over its parent's count, never over the row
shown above it: ``quarantined`` and ``scored`` split the rows read (``audience``);
``holdout``, ``arm_paused``, ``no_offer`` and ``selected`` split the scored customers;
the gates then hold some of the selected for ``review`` and approve the rest, whose
deliveries end ``deferred``, ``sent``, ``failed`` or ``suppressed_at_send``. The funnel has
no count of approved messages, so those are shown against ``selected``, the stage that
feeds the gates. Keys follow the funnel dict of :mod:`sluice.campaign.run` (from
:meth:`sluice.store.audit.AuditStore.funnel`).
"""

from __future__ import annotations

FUNNEL_PARENTS: dict[str, str | None] = {
    "audience": None,
    "quarantined": "audience",
    "scored": "audience",
    "holdout": "scored",
    "arm_paused": "scored",
    "no_offer": "scored",
    "selected": "scored",
    "review": "selected",
    "deferred": "selected",
    "sent": "selected",
    "failed": "selected",
    "suppressed_at_send": "selected",
}
"""Stage -> the stage it comes from (``None``: the top, shown without a share)."""

RUN_STAGES = ("audience", "quarantined")
"""Stages counted by the run itself (its staged rows), not read from the audit trail."""


def funnel_parent(stage: str) -> str | None:
    """The stage ``stage`` comes from; ``None`` for the top and for unknown stages."""
    return FUNNEL_PARENTS.get(stage)
