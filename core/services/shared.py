"""What several use cases share: limits, the prepared statements of the hot paths, paging."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Integer, and_, bindparam, exists, func, select

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


def locked(q, lock: bool):
    return q.with_for_update() if lock else q


def pool_users_statements(*conds):
    """(count, page) of a pool's seat holders, by name; ``conds``: the search's term filters."""
    where = (Seat.pool_id == bindparam("pool"), *conds)
    count = select(func.count()).select_from(Seat).where(*where)
    page = (select(User.id, User.name, User.email, Seat.downgrade_to, QuoteHold.expires_at)
            .select_from(Seat).join(User, User.id == Seat.user_id)
            .outerjoin(QuoteHold, and_(QuoteHold.seat_id == Seat.id, QuoteHold.expires_at > bindparam("now")))
            .where(*where).order_by(Seat.sort_key, Seat.user_id)
            .limit(bindparam("limit", type_=Integer)).offset(bindparam("offset", type_=Integer)))
    return count, page


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

