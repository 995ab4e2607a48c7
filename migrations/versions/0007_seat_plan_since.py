"""seats: since when the seat has its current plan ("Since" on My license)

Backfill: the seat's assignment, or, when later, the settlement of the latest paid upgrade that
moved its user into the seat's plan, or the latest downgrade into it applied at a renewal (the
audit event written by the roll-over that applied it).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 00:00:00
"""

import contextlib

import sqlalchemy as sa
from alembic import op

import core.db

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

seats = sa.table("seats", sa.column("id", sa.Integer), sa.column("pool_id", sa.Integer),
                 sa.column("user_id", sa.Integer), sa.column("assigned_at", sa.DateTime),
                 sa.column("plan_since", sa.DateTime))
pools = sa.table("pools", sa.column("id", sa.Integer), sa.column("account_id", sa.Integer),
                 sa.column("plan_code", sa.String))
quotes = sa.table("quotes", sa.column("account_id", sa.Integer), sa.column("kind", sa.String),
                  sa.column("status", sa.String), sa.column("to_plan", sa.String), sa.column("user_ids", sa.JSON),
                  sa.column("closed_at", sa.DateTime))
audit = sa.table("audit_events", sa.column("id", sa.Integer), sa.column("account_id", sa.Integer),
                 sa.column("action", sa.String), sa.column("target", sa.String), sa.column("detail", sa.JSON),
                 sa.column("created_at", sa.DateTime))


@contextlib.contextmanager
def _quote_holds_kept(bind):
    """SQLite changes a column by rebuilding the table, and with the foreign keys on (core.db) its
    DROP TABLE deletes the quote holds that cascade from the seats: they are kept aside meanwhile."""
    if bind.dialect.name != "sqlite":
        yield
        return
    bind.exec_driver_sql("CREATE TEMP TABLE quote_holds_kept AS SELECT * FROM quote_holds")
    yield
    bind.exec_driver_sql("INSERT INTO quote_holds SELECT * FROM quote_holds_kept")
    bind.exec_driver_sql("DROP TABLE quote_holds_kept")


def _moved(bind, account_id: int, plan: str, user_ids: list[int], at) -> None:
    """The seats of these users now in a pool of ``plan`` got it at ``at`` (unless assigned later)."""
    in_plan = sa.select(pools.c.id).where(pools.c.account_id == account_id, pools.c.plan_code == plan)
    for k in range(0, len(user_ids), 500):
        bind.execute(seats.update().where(seats.c.user_id.in_(user_ids[k:k + 500]), seats.c.pool_id.in_(in_plan),
                                          seats.c.plan_since < at).values(plan_since=at))


def upgrade() -> None:
    with op.batch_alter_table("seats", schema=None) as batch_op:
        batch_op.add_column(sa.Column("plan_since", core.db.UTCDateTime(), nullable=True))
    bind = op.get_bind()
    bind.execute(seats.update().values(plan_since=seats.c.assigned_at))
    for account_id, plan, user_ids, at in bind.execute(
            sa.select(quotes.c.account_id, quotes.c.to_plan, quotes.c.user_ids, quotes.c.closed_at)
            .where(quotes.c.kind == "upgrade", quotes.c.status == "paid", quotes.c.closed_at.is_not(None))).all():
        ids = [int(u) for u in user_ids or [] if str(u).isdigit()]
        if plan and ids:
            _moved(bind, account_id, plan, ids, at)
    for account_id, target, detail, at in bind.execute(
            sa.select(audit.c.account_id, audit.c.target, audit.c.detail, audit.c.created_at)
            .where(audit.c.action == "seat.downgraded").order_by(audit.c.id)).all():
        user = (target or "").removeprefix("user:")
        plan = (detail or {}).get("to") if isinstance(detail, dict) else None
        if account_id and user.isdigit() and isinstance(plan, str):
            _moved(bind, account_id, plan, [int(user)], at)
    with _quote_holds_kept(bind), op.batch_alter_table("seats", schema=None) as batch_op:
        batch_op.alter_column("plan_since", existing_type=core.db.UTCDateTime(), nullable=False)


def downgrade() -> None:
    with _quote_holds_kept(op.get_bind()), op.batch_alter_table("seats", schema=None) as batch_op:
        batch_op.drop_column("plan_since")
