"""posted_cards: an index on the message, to find what a message was recorded as showing, and
until when its reader is acting on it (an in-place update waits for the action's answer)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 19:00:00
"""

import sqlalchemy as sa
from alembic import op

import core.db

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("posted_cards", schema=None) as batch_op:
        batch_op.create_index("ix_posted_cards_message", ["message_ref"], unique=False)
        batch_op.add_column(sa.Column("answering_until", core.db.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("posted_cards", schema=None) as batch_op:
        batch_op.drop_column("answering_until")
        batch_op.drop_index("ix_posted_cards_message")
