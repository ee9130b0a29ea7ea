"""Claims are leases: who holds a delivery attempt or a review approval, and until when;
and the recipient's time zone on each delivery, for the send-time re-check.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("claim_owner", sa.String(64)))
        batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("time_zone", sa.String(64)))
    with op.batch_alter_table("reviews") as batch:
        batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("reviews") as batch:
        batch.drop_column("lease_until")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("time_zone")
        batch.drop_column("lease_until")
        batch.drop_column("claim_owner")
