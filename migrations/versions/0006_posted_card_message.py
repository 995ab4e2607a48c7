"""posted_cards: an index on the message, to find what a message was recorded as showing

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 19:00:00
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("posted_cards", schema=None) as batch_op:
        batch_op.create_index("ix_posted_cards_message", ["message_ref"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("posted_cards", schema=None) as batch_op:
        batch_op.drop_index("ix_posted_cards_message")
