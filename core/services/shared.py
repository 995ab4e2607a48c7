"""What several use cases share: limits, the prepared statements of the hot paths, paging."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Integer, Select, String, Table, and_, bindparam, exists, func, select, tuple_
from sqlalchemy.orm import Session

from core.errors import InvalidInput, Message
from core.models import QuoteHold, Seat, User, UserTerm
from core.text import words

PAGE_SIZE = 20
MAX_PAGE_SIZE = 50
MAX_CART_LINES = 20
MAX_OUTBOX_ATTEMPTS = 25


# ---------------------------------------------------------------------------- statements of the hot paths
# The queries of nearly every chat turn (who is calling, a pool and its views, a page of its users, a quote),
# built once with bound parameters. Built per call, a statement costs ~0.1 ms to build and ~0.15 ms more
# for SQLAlchemy to compute its cache key (to find its compiled form): as much as running it on SQLite.


def execute_core(s: Session, statement, params: dict | list[dict] | None = None) -> CursorResult[Any]:
    """A Core statement (columns read, rows written: no ORM objects) run on the session's
    connection: a third of the cost of ``s.execute`` on the hot paths (no ORM compile state or
    result processing). Flushed first, as an ORM query autoflushes, so that it sees (and may name)
    what the transaction added."""
    s.flush()
    return s.connection().execute(statement, params)


def table_of(model: type) -> Table:
    """The Core table of a mapped class (what a Core insert of its rows is written against)."""
    return cast(Table, model.__table__)  # type: ignore[attr-defined]


def locked(q, lock: bool):
    return q.with_for_update() if lock else q


@dataclass(frozen=True)
class PoolUsersSql:
    """The statements of a page of a pool's seat holders, in the pool's order (sort key, user id):
    keyset pages (the rows after, at or before a row's key: an index range on ix_seats_pool_sort,
    as fast on the last page of 100,000 as on the first), and the key of the row at an offset,
    counted from the nearer end over that index alone (a page chosen by its number)."""

    count: Select
    first: Select  # the first :limit rows
    after: Select  # the :limit rows after (:key_sort, :key_id)
    at: Select  # the :limit rows from (:key_sort, :key_id) on
    before: Select  # the :limit rows before it, nearest first
    key_from_start: Select  # (sort key, user id) of the row at :offset
    key_from_end: Select  # the same, counted from the last row


def pool_users_statements(*conds) -> PoolUsersSql:
    """A pool's seat holders, by name; ``conds``: the search's term filters."""
    where = (Seat.pool_id == bindparam("pool"), *conds)
    key = tuple_(Seat.sort_key, Seat.user_id)
    given = tuple_(bindparam("key_sort", type_=String), bindparam("key_id", type_=Integer))
    asc, desc = (Seat.sort_key, Seat.user_id), (Seat.sort_key.desc(), Seat.user_id.desc())
    limit = bindparam("limit", type_=Integer)
    rows = (select(User.id, User.name, User.email, Seat.downgrade_to, QuoteHold.expires_at, Seat.sort_key)
            .select_from(Seat).join(User, User.id == Seat.user_id)
            .outerjoin(QuoteHold, and_(QuoteHold.seat_id == Seat.id, QuoteHold.expires_at > bindparam("now")))
            .where(*where))
    keys = select(Seat.sort_key, Seat.user_id).where(*where).limit(1).offset(bindparam("offset", type_=Integer))
    return PoolUsersSql(
        count=select(func.count()).select_from(Seat).where(*where),
        first=rows.order_by(*asc).limit(limit),
        after=rows.where(key > given).order_by(*asc).limit(limit),
        at=rows.where(key >= given).order_by(*asc).limit(limit),
        before=rows.where(key < given).order_by(*desc).limit(limit),
        key_from_start=keys.order_by(*asc),
        key_from_end=keys.order_by(*desc))


SEATS_OF = {lock: locked(select(Seat).where(Seat.pool_id == bindparam("pool"),
                                            Seat.user_id.in_(bindparam("users", expanding=True)))
                         .order_by(Seat.sort_key, Seat.id), lock)
            for lock in (False, True)}  # (locked?)


def page_args(page, page_size) -> tuple[int, int]:
    try:
        page = max(0, int(page or 0))
        page_size = min(MAX_PAGE_SIZE, max(1, int(page_size or PAGE_SIZE)))
    except (TypeError, ValueError):
        raise InvalidInput(Message("That page number is not valid.")) from None
    return min(page, 10**6), page_size


def term_filter(account_id: int, query: str, user_col):
    """SQL conditions: every word of ``query`` is a prefix of one of the user's terms
    (index range on user_terms, no scan in Python)."""
    conds = []
    for w in words(query)[:5]:
        hi = w[:-1] + chr(ord(w[-1]) + 1)
        conds.append(exists().where(UserTerm.user_id == user_col, UserTerm.account_id == account_id,
                                    UserTerm.term >= w, UserTerm.term < hi))
    return conds


def utc(at: datetime) -> datetime:
    """An instant as aware UTC (a naive one, as SQLite gives it back, is UTC)."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def attempt_key(quote_id: str, what: str, attempt: int) -> str:
    """The idempotency key of a quote's ``what`` ("link", "carry") request, attempt ``attempt``
    (the first keeps the key used before attempts were numbered)."""
    return f"quote-{quote_id}-{what}" + (f"-{attempt}" if attempt else "")


def chunks(ids: list, size: int = 500):
    for i in range(0, len(ids), size):
        yield ids[i:i + size]

