"""Audit records keep the feature timestamp of the row a message was scored on (a
journey's online store lookup), so a decision can be traced to the features it saw.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit") as batch:
        batch.add_column(sa.Column("features_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("audit") as batch:
        batch.drop_column("features_at")
