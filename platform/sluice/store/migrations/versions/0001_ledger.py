"""The delivery ledger, campaign runs, contact counts, suppressions and the audit trail.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(128), primary_key=True),
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("spec_digest", sa.String(64), nullable=False),
        sa.Column("dry_run", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("funnel", sa.Text),
        sa.Column("context", sa.Text),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "deliveries",
        sa.Column("idempotency_key", sa.String(64), primary_key=True),
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("transport", sa.String(16), nullable=False),
        sa.Column("decision_id", sa.String(64)),
        sa.Column("offer_id", sa.String(64)),
        sa.Column("arm", sa.String(16)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("local_day", sa.Date, nullable=False),
        sa.Column("send_after", sa.DateTime(timezone=True)),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("provider_message_id", sa.String(256)),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("attempt_started_at", sa.DateTime(timezone=True)),
        sa.Column("error", sa.Text),
        sa.Column("reserved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint(
            "run_id", "customer_id", "channel", name="uq_delivery_run_customer_channel"
        ),
    )
    op.create_index("ix_deliveries_run_state", "deliveries", ["run_id", "state"])
    op.create_index("ix_deliveries_customer", "deliveries", ["customer_id"])
    op.create_table(
        "contact_counts",
        sa.Column("customer_id", sa.String(128), primary_key=True),
        sa.Column("local_day", sa.Date, primary_key=True),
        sa.Column("n", sa.Integer, nullable=False),
    )
    op.create_table(
        "suppressions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("brand", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("source", sa.String(64)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("customer_id", "channel", "brand", "reason", name="uq_suppression"),
    )
    op.create_index("ix_suppressions_customer", "suppressions", ["customer_id"])
    op.create_table(
        "audit",
        sa.Column("run_id", sa.String(128), primary_key=True),
        sa.Column("customer_id", sa.String(128), primary_key=True),
        sa.Column("decision_id", sa.String(64), nullable=False),
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("arm", sa.String(16), nullable=False),
        sa.Column("model_name", sa.String(128)),
        sa.Column("model_version", sa.String(32)),
        sa.Column("feature_hash", sa.String(64)),
        sa.Column("score", sa.Float),
        sa.Column("offer_id", sa.String(64)),
        sa.Column("channel", sa.String(16)),
        sa.Column("expected_value", sa.Float),
        sa.Column("exclusions", sa.Text),
        sa.Column("template_version", sa.String(32)),
        sa.Column("prompt_hash", sa.String(64)),
        sa.Column("copy_source", sa.String(16)),
        sa.Column("draft_id", sa.String(64)),
        sa.Column("slots", sa.Text),
        sa.Column("verdicts", sa.Text),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("gate", sa.String(64)),
        sa.Column("reason", sa.String(64)),
        sa.Column("idempotency_key", sa.String(64)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "drafts",
        sa.Column("draft_id", sa.String(64), primary_key=True),
        sa.Column("draft", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_audit_run_outcome", "audit", ["run_id", "outcome"])


def downgrade() -> None:
    op.drop_table("drafts")
    op.drop_index("ix_audit_run_outcome", "audit")
    op.drop_table("audit")
    op.drop_table("suppressions")
    op.drop_table("contact_counts")
    op.drop_index("ix_deliveries_customer", "deliveries")
    op.drop_index("ix_deliveries_run_state", "deliveries")
    op.drop_table("deliveries")
    op.drop_table("runs")
