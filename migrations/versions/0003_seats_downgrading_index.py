"""seats: a partial index on the seats with a downgrade scheduled

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 19:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("seats", schema=None) as batch_op:
        batch_op.create_index("ix_seats_downgrading", ["pool_id", "downgrade_to"], unique=False,
                              sqlite_where=sa.text("downgrade_to IS NOT NULL"),
                              postgresql_where=sa.text("downgrade_to IS NOT NULL"))


def downgrade() -> None:
    with op.batch_alter_table("seats", schema=None) as batch_op:
        batch_op.drop_index("ix_seats_downgrading", sqlite_where=sa.text("downgrade_to IS NOT NULL"),
                            postgresql_where=sa.text("downgrade_to IS NOT NULL"))
