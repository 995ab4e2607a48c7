"""users: an index on each account's users by role, so that reading its administrators (the
quote card's ``admins``, a request's approvers, the caller's tenant admins) is not a scan of all
the account's users

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 22:40:00
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index("ix_users_account_role", ["account_id", "role"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index("ix_users_account_role")
