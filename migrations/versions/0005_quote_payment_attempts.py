"""quotes: the payment attempts (idempotency keys recorded per attempt), the lapsed payment, and a
partial index on the open quotes by expiry (the expiry sweep)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 00:00:00
"""

import sqlalchemy as sa
from alembic import op

import core.db

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("quotes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("link_attempt", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("link_attempt_at", core.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("carry_attempt", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("payment_lapsed", sa.String(length=16), nullable=True))
        batch_op.create_index("ix_quotes_open_expiry", ["expires_at"], unique=False,
                              sqlite_where=sa.text("status = 'open'"), postgresql_where=sa.text("status = 'open'"))


def downgrade() -> None:
    with op.batch_alter_table("quotes", schema=None) as batch_op:
        batch_op.drop_index("ix_quotes_open_expiry", sqlite_where=sa.text("status = 'open'"),
                            postgresql_where=sa.text("status = 'open'"))
        batch_op.drop_column("payment_lapsed")
        batch_op.drop_column("carry_attempt")
        batch_op.drop_column("link_attempt_at")
        batch_op.drop_column("link_attempt")
