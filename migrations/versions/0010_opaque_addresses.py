"""delivery_addresses, posted_cards: the conversation address opaque to the core — the JSON
``address`` becomes ``ref`` (the chat layer's serialised conversation reference, never read by
the core) beside the facts the core needs: ``chat_user_id``, ``locale``, ``timezone``. The JSON
column is dropped (downgrade rebuilds it from the new columns).

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-06 21:30:00
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0008"
branch_labels = None
depends_on = None

_TABLES = (("delivery_addresses", "user_id"), ("posted_cards", "id"))
# what the bot's ref leaves out (bot/addresses.py): the locale and time zone are columns now
_NOT_IN_REF = ("activityId", "locale", "timezone")


def _text(value, length: int) -> str | None:
    return value[:length] if isinstance(value, str) and value else None


def _split(address) -> dict:
    """The new columns of an address as stored until 0010 (a serialised conversation reference
    with ``locale`` and ``timezone`` added by the bot)."""
    if not isinstance(address, dict):
        return {"ref": json.dumps(address), "chat_user_id": None, "locale": None, "timezone": None}
    user = address.get("user") if isinstance(address.get("user"), dict) else {}
    told = user.get("id")
    return {"ref": json.dumps({k: v for k, v in address.items() if k not in _NOT_IN_REF}, sort_keys=True,
                              separators=(",", ":")),
            # (an address made when the notifier created the chat names the person by directory id only)
            "chat_user_id": _text(told, 256) if told != user.get("aadObjectId") else None,
            "locale": _text(address.get("locale"), 20), "timezone": _text(address.get("timezone"), 64)}


def _joined(ref, locale, timezone) -> dict:
    """The JSON address of a row, as stored until 0010."""
    try:
        address = json.loads(ref) if ref else {}
    except ValueError:
        address = {}
    address = address if isinstance(address, dict) else {}
    return {**address, **({"locale": locale} if locale else {}), **({"timezone": timezone} if timezone else {})}


def _columns() -> list[sa.Column]:
    return [sa.Column("ref", sa.Text(), nullable=True), sa.Column("chat_user_id", sa.String(256), nullable=True),
            sa.Column("locale", sa.String(20), nullable=True), sa.Column("timezone", sa.String(64), nullable=True)]


def _table(name: str, key: str) -> sa.TableClause:
    return sa.table(name, sa.column(key, sa.Integer), sa.column("address", sa.JSON), sa.column("ref", sa.Text),
                    sa.column("chat_user_id", sa.String), sa.column("locale", sa.String),
                    sa.column("timezone", sa.String))


def upgrade() -> None:
    bind = op.get_bind()
    for name, key in _TABLES:
        with op.batch_alter_table(name, schema=None) as batch_op:
            for column in _columns():
                batch_op.add_column(column)
        t = _table(name, key)
        for pk, address in bind.execute(sa.select(t.c[key], t.c.address)).all():
            bind.execute(t.update().where(t.c[key] == pk).values(**_split(address)))
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.alter_column("ref", existing_type=sa.Text(), nullable=False)
            batch_op.drop_column("address")


def downgrade() -> None:
    bind = op.get_bind()
    for name, key in _TABLES:
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.add_column(sa.Column("address", sa.JSON(), nullable=True))
        t = _table(name, key)
        for pk, ref, locale, timezone in bind.execute(sa.select(t.c[key], t.c.ref, t.c.locale, t.c.timezone)).all():
            bind.execute(t.update().where(t.c[key] == pk).values(address=_joined(ref, locale, timezone)))
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.alter_column("address", existing_type=sa.JSON(), nullable=False)
            for column in ("timezone", "locale", "chat_user_id", "ref"):
                batch_op.drop_column(column)
