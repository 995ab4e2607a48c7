"""outbox: indexes for claims by account (the notifier's lanes) and for live leases

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 19:30:00
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        # an account's due messages, oldest first (Outbox.claim(per_account=...))
        batch_op.create_index("ix_outbox_status_account_available", ["status", "account_id", "available_at"],
                              unique=False)
        # the leases running now (which accounts another worker holds)
        batch_op.create_index("ix_outbox_locked_until", ["locked_until"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_locked_until")
        batch_op.drop_index("ix_outbox_status_account_available")
