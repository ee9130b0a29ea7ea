"""Journeys: deployed specs, instances, members, the step log and the event inbox; events
carry properties and longer type names.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

T = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.alter_column("type", type_=sa.String(64), existing_type=sa.String(16))
        batch.add_column(sa.Column("properties", sa.Text))
    op.create_table(
        "journeys",
        sa.Column("journey_id", sa.String(64), primary_key=True),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("spec_digest", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("deployed_by", sa.String(128), nullable=False),
        sa.Column("deployed_at", T, nullable=False),
        sa.Column("updated_at", T, nullable=False),
    )
    op.create_table(
        "schedules",
        sa.Column("subject", sa.String(128), primary_key=True),
        sa.Column("last_at", T),
        sa.Column("created_at", T, nullable=False),
    )
    op.create_table(
        "journey_instances",
        sa.Column("instance_id", sa.String(64), primary_key=True),
        sa.Column("journey_id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("holdout", sa.Boolean, nullable=False),
        sa.Column("entry", sa.Text, nullable=False),
        sa.Column("entry_event_id", sa.String(128)),
        sa.Column("entered_at", T, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("step", sa.String(64)),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("due_at", T),
        sa.Column("woken_by", sa.String(128)),
        sa.Column("exit_reason", sa.String(64)),
        sa.Column("owner", sa.String(64)),
        sa.Column("lease_until", T),
        sa.Column("updated_at", T, nullable=False),
        sa.UniqueConstraint(
            "journey_id", "customer_id", "generation", name="uq_instance_generation"
        ),
    )
    op.create_index("ix_instances_due", "journey_instances", ["state", "due_at"])
    op.create_index("ix_instances_customer", "journey_instances", ["customer_id", "state"])
    op.create_table(
        "journey_members",
        sa.Column("journey_id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(128), primary_key=True),
        sa.Column("entries", sa.Integer, nullable=False),
        sa.Column("last_entered_at", T, nullable=False),
        sa.Column("live_instance", sa.String(64)),
    )
    op.create_table(
        "journey_steps",
        sa.Column("instance_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("journey_id", sa.String(64), nullable=False),
        sa.Column("step_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(64), nullable=False),
        sa.Column("holdout", sa.Boolean, nullable=False),
        sa.Column("detail", sa.Text),
        sa.Column("at", T, nullable=False),
    )
    op.create_index("ix_journey_steps_journey", "journey_steps", ["journey_id", "step_id"])
    op.create_table(
        "journey_inbox",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(128), nullable=False, unique=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("occurred_at", T, nullable=False),
        sa.Column("properties", sa.Text),
    )


def downgrade() -> None:
    for name in ("journey_inbox", "journey_steps", "journey_members", "journey_instances"):
        op.drop_table(name)
    op.drop_table("schedules")
    op.drop_table("journeys")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("properties")
        batch.alter_column("type", type_=sa.String(16), existing_type=sa.String(64))
