"""The feedback loop: outcome events, paused arms, incidents, the operations log, drift.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("event_id", sa.String(128), primary_key=True),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.String(128)),
        sa.Column("campaign_id", sa.String(64)),
        sa.Column("channel", sa.String(16)),
        sa.Column("revenue", sa.Float),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_events_customer_time", "events", ["customer_id", "occurred_at"])
    op.create_index("ix_events_run", "events", ["run_id"])
    op.create_index("ix_events_time", "events", ["occurred_at"])
    op.create_table(
        "arm_states",
        sa.Column("campaign_id", sa.String(64), primary_key=True),
        sa.Column("arm", sa.String(16), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("incident_id", sa.String(64)),
        sa.Column("changed_by", sa.String(128), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "incidents",
        sa.Column("incident_id", sa.String(64), primary_key=True),
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("arm", sa.String(16), nullable=False),
        sa.Column("guardrail", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("evidence", sa.Text, nullable=False),
        sa.Column("actions", sa.Text, nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_by", sa.String(128)),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        sa.Column("note", sa.Text),
    )
    op.create_index("ix_incidents_campaign", "incidents", ["campaign_id", "status"])
    op.create_table(
        "operations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(256), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_operations_subject", "operations", ["subject"])
    op.create_table(
        "run_drift",
        sa.Column("run_id", sa.String(128), primary_key=True),
        sa.Column("model_version", sa.String(32), primary_key=True),
        sa.Column("variable", sa.String(128), primary_key=True),
        sa.Column("psi", sa.Float, nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("run_drift")
    op.drop_index("ix_operations_subject", "operations")
    op.drop_table("operations")
    op.drop_index("ix_incidents_campaign", "incidents")
    op.drop_table("incidents")
    op.drop_table("arm_states")
    op.drop_index("ix_events_time", "events")
    op.drop_index("ix_events_run", "events")
    op.drop_index("ix_events_customer_time", "events")
    op.drop_table("events")
