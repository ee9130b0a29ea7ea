"""Tables of the Sluice database (ledger, runs, suppressions, contact counts).

SQLAlchemy Core, one ``MetaData``; Alembic migrations in ``migrations/`` create and
evolve it. Times are stored in UTC.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(128), primary_key=True),
    Column("campaign_id", String(64), nullable=False),
    Column("spec", Text, nullable=False),
    Column("spec_digest", String(64), nullable=False),
    Column("dry_run", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    Column("funnel", Text),
    Column("context", Text),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("idempotency_key", String(64), primary_key=True),
    Column("run_id", String(128), nullable=False),
    Column("campaign_id", String(64), nullable=False),
    Column("customer_id", String(128), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("transport", String(16), nullable=False),
    Column("decision_id", String(64)),
    Column("offer_id", String(64)),
    Column("arm", String(16)),
    Column("state", String(16), nullable=False),
    Column("local_day", Date, nullable=False),
    Column("send_after", DateTime(timezone=True)),
    Column("payload", Text, nullable=False),
    Column("provider_message_id", String(256)),
    Column("attempts", Integer, nullable=False, default=0),
    Column("attempt_started_at", DateTime(timezone=True)),
    Column("claim_owner", String(64)),
    Column("lease_until", DateTime(timezone=True)),
    Column("time_zone", String(64)),
    Column("error", Text),
    Column("reserved_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("run_id", "customer_id", "channel", name="uq_delivery_run_customer_channel"),
    Index("ix_deliveries_run_state", "run_id", "state"),
    Index("ix_deliveries_customer", "customer_id"),
)

contact_counts = Table(
    "contact_counts",
    metadata,
    Column("customer_id", String(128), primary_key=True),
    Column("local_day", Date, primary_key=True),
    Column("n", Integer, nullable=False),
)

suppressions = Table(
    "suppressions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("customer_id", String(128), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("brand", String(64), nullable=False),
    Column("reason", String(32), nullable=False),
    Column("source", String(64)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("customer_id", "channel", "brand", "reason", name="uq_suppression"),
    Index("ix_suppressions_customer", "customer_id"),
)

audit = Table(
    "audit",
    metadata,
    Column("run_id", String(128), primary_key=True),
    Column("customer_id", String(128), primary_key=True),
    Column("decision_id", String(64), nullable=False),
    Column("campaign_id", String(64), nullable=False),
    Column("arm", String(16), nullable=False),
    Column("model_name", String(128)),
    Column("model_version", String(32)),
    Column("feature_hash", String(64)),
    # The feature timestamp of the row the message was scored on, when an online store
    # lookup gave it (journeys scoring from the store).
    Column("features_at", DateTime(timezone=True)),
    Column("score", Float),
    Column("offer_id", String(64)),
    Column("channel", String(16)),
    Column("expected_value", Float),
    Column("exclusions", Text),
    Column("template_version", String(32)),
    Column("prompt_hash", String(64)),
    Column("copy_source", String(16)),
    Column("draft_id", String(64)),
    Column("slots", Text),
    Column("verdicts", Text),
    Column("outcome", String(16), nullable=False),
    Column("gate", String(64)),
    Column("reason", String(64)),
    Column("idempotency_key", String(64)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_audit_run_outcome", "run_id", "outcome"),
)
"""One record per candidate of a run: what was decided, proposed and ruled, and why."""

drafts = Table(
    "drafts",
    metadata,
    Column("draft_id", String(64), primary_key=True),
    Column("draft", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
"""Message drafts by content hash: many recipients share one."""

reviews = Table(
    "reviews",
    metadata,
    Column("review_id", String(64), primary_key=True),
    Column("run_id", String(128), nullable=False),
    Column("campaign_id", String(64), nullable=False),
    Column("customer_id", String(128), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("offer_id", String(64)),
    Column("gate", String(64), nullable=False),
    Column("reason", String(64), nullable=False),
    Column("detail", Text),
    Column("message", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("decided_by", String(128)),
    Column("decided_at", DateTime(timezone=True)),
    Column("note", Text),
    Column("result", String(64)),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("lease_until", DateTime(timezone=True)),
    Index("ix_reviews_status", "status", "run_id"),
)
"""Messages waiting for a person (``pending``) and what became of them (``approved``,
``rejected``, ``expired``). ``message`` is the candidate row (Arrow IPC, base64) so an
approved message is gated and delivered exactly as the run would have."""

events = Table(
    "events",
    metadata,
    Column("event_id", String(128), primary_key=True),
    Column("type", String(64), nullable=False),
    Column("customer_id", String(128), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("run_id", String(128)),
    Column("campaign_id", String(64)),
    Column("channel", String(16)),
    Column("revenue", Float),
    Column("source", String(32), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("properties", Text),
    Index("ix_events_customer_time", "customer_id", "occurred_at"),
    Index("ix_events_run", "run_id"),
    Index("ix_events_time", "occurred_at"),
)
"""Events (outcomes and the customer events journeys react to), deduplicated by the
sender's event id; ``properties`` holds a customer event's properties (JSON)."""

arm_states = Table(
    "arm_states",
    metadata,
    Column("campaign_id", String(64), primary_key=True),
    Column("arm", String(16), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("incident_id", String(64)),
    Column("changed_by", String(128), nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
)
"""A campaign arm that is ``paused`` (by a guardrail) or ``active`` again (by a person)."""

incidents = Table(
    "incidents",
    metadata,
    Column("incident_id", String(64), primary_key=True),
    Column("campaign_id", String(64), nullable=False),
    Column("run_id", String(128), nullable=False),
    Column("arm", String(16), nullable=False),
    Column("guardrail", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("evidence", Text, nullable=False),
    Column("actions", Text, nullable=False),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("resolved_by", String(128)),
    Column("resolved_at", DateTime(timezone=True)),
    Column("note", Text),
    Index("ix_incidents_campaign", "campaign_id", "status"),
)
"""What a guardrail saw and did; a person resolves it."""

operations = Table(
    "operations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("subject", String(256), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("detail", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_operations_subject", "subject"),
)
"""The operations log: approvals, promotions, rollbacks, pauses, resumes (who, what, why)."""

run_drift = Table(
    "run_drift",
    metadata,
    Column("run_id", String(128), primary_key=True),
    Column("model_version", String(32), primary_key=True),
    Column("variable", String(128), primary_key=True),
    Column("psi", Float, nullable=False),
    Column("level", String(8), nullable=False),
)
"""Population stability of each feature and of the score, per run and model version."""

journeys = Table(
    "journeys",
    metadata,
    Column("journey_id", String(64), primary_key=True),
    Column("spec", Text, nullable=False),
    Column("spec_digest", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("deployed_by", String(128), nullable=False),
    Column("deployed_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
"""Deployed journeys (``active`` or ``paused``)."""

schedules = Table(
    "schedules",
    metadata,
    Column("subject", String(128), primary_key=True),
    Column("last_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
"""Cron schedules the orchestrator keeps (``campaign:<id>``, ``journey:<id>``): the last
scheduled time it started."""

journey_instances = Table(
    "journey_instances",
    metadata,
    Column("instance_id", String(64), primary_key=True),
    Column("journey_id", String(64), nullable=False),
    Column("customer_id", String(128), nullable=False),
    Column("generation", Integer, nullable=False),
    Column("holdout", Boolean, nullable=False),
    Column("entry", Text, nullable=False),
    Column("entry_event_id", String(128)),
    Column("entered_at", DateTime(timezone=True), nullable=False),
    Column("state", String(16), nullable=False),
    Column("step", String(64)),
    Column("seq", Integer, nullable=False),
    Column("due_at", DateTime(timezone=True)),
    Column("woken_by", String(128)),
    Column("exit_reason", String(64)),
    Column("owner", String(64)),
    Column("lease_until", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("journey_id", "customer_id", "generation", name="uq_instance_generation"),
    Index("ix_instances_due", "state", "due_at"),
    Index("ix_instances_customer", "customer_id", "state"),
)
"""One journey instance per entry: where it stands (``step``, due at ``due_at``; ``seq``
steps done), ``live`` until it ``completed`` or ``exited`` (with its reason)."""

journey_members = Table(
    "journey_members",
    metadata,
    Column("journey_id", String(64), primary_key=True),
    Column("customer_id", String(128), primary_key=True),
    Column("entries", Integer, nullable=False),
    Column("last_entered_at", DateTime(timezone=True), nullable=False),
    Column("live_instance", String(64)),
)
"""Per journey and customer: how often they entered, when last, and the live instance
(at most one), for the re-entry rule."""

journey_steps = Table(
    "journey_steps",
    metadata,
    Column("instance_id", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("journey_id", String(64), nullable=False),
    Column("step_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("outcome", String(64), nullable=False),
    Column("holdout", Boolean, nullable=False),
    Column("detail", Text),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_journey_steps_journey", "journey_id", "step_id"),
)
"""Every step an instance took, once: (instance, seq) is the key, so no step runs twice."""

journey_inbox = Table(
    "journey_inbox",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(128), nullable=False, unique=True),
    Column("type", String(64), nullable=False),
    Column("customer_id", String(128), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("properties", Text),
)
"""Stored events a journey reacts to, in arrival order, until the orchestrator has
applied them (entries, exits, awaited events)."""
