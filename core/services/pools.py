"""License pools: loading one of the caller's account, their views, and the pages of their users."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from fractions import Fraction
from typing import TYPE_CHECKING, NamedTuple

from sqlalchemy import bindparam, func, select

from core import pricing
from core.catalog import INTERVALS
from core.errors import Message, NotFound, StaleSelection, no_longer_held
from core.kinds import AuditAction
from core.models import Pool, Seat, Subscription, User
from core.services.periods import rate_at
from core.services.plans import PlanViews
from core.services.shared import (
    PAGE_SIZE,
    SEATS_OF,
    chunks,
    execute_core,
    locked,
    page_args,
    pool_users_statements,
    term_filter,
)
from core.text import clean_text, parse_id, parse_ids
from core.views import Actor, CallerView, Page, PageKey, PoolView, UserRow

if TYPE_CHECKING:
    from core.unit_of_work import Unit, Units

NO_SUCH_POOL = Message("That license pool does not exist in your account (it may have been removed).")

_POOL = select(Pool).where(Pool.id == bindparam("pool"), Pool.account_id == bindparam("account"))
_POOL_LOCKED = locked(_POOL, True)


class PoolRow(NamedTuple):
    """What a read path uses of a pool (read as columns: no ORM object to build)."""

    id: int
    account_id: int
    subscription_id: int
    plan_code: str
    quantity: int
    removal_scheduled: int


class SubscriptionRow(NamedTuple):
    """What a read path uses of a subscription (read as columns)."""

    id: int
    interval: str
    period_start: datetime
    period_end: datetime


_POOL_AND_SUBSCRIPTION = (select(*(getattr(Pool, f) for f in PoolRow._fields),
                                 *(getattr(Subscription, f) for f in SubscriptionRow._fields))
                          .join(Subscription, Subscription.id == Pool.subscription_id)
                          .where(Pool.id == bindparam("pool"), Pool.account_id == bindparam("account")))
_ACCOUNT_POOLS = (select(Pool, Subscription).join(Subscription, Subscription.id == Pool.subscription_id)
                  .where(Pool.account_id == bindparam("account")))
_ASSIGNED = (select(Seat.pool_id, func.count()).where(Seat.pool_id.in_(bindparam("pools", expanding=True)))
             .group_by(Seat.pool_id))
# scheduled downgrades are rare: the partial index ix_seats_downgrading keeps this instant
_DOWNGRADES = (select(Pool.subscription_id, Seat.pool_id, Seat.downgrade_to, func.count())
               .select_from(Seat).join(Pool, Pool.id == Seat.pool_id)
               .where(Seat.downgrade_to.is_not(None),
                      Pool.subscription_id.in_(bindparam("subscriptions", expanding=True)))
               .group_by(Pool.subscription_id, Seat.pool_id, Seat.downgrade_to))
_POOL_USERS = pool_users_statements()


def load_pool(u: Unit, caller: CallerView, pool_id, *, lock: bool = False) -> Pool:
    pid = parse_id(pool_id, "pool")
    pool = u.s.scalars(_POOL_LOCKED if lock else _POOL, {"pool": pid, "account": caller.account_id}).first()
    if pool is None:
        raise NotFound(NO_SUCH_POOL)
    return pool


def pool_and_subscription(u: Unit, caller: CallerView, pool_id) -> tuple[PoolRow, SubscriptionRow]:
    """:func:`load_pool` and its subscription, in one query of columns (the read paths)."""
    pid = parse_id(pool_id, "pool")
    row = execute_core(u.s, _POOL_AND_SUBSCRIPTION, {"pool": pid, "account": caller.account_id}).first()
    if row is None:
        raise NotFound(NO_SUCH_POOL)
    n = len(PoolRow._fields)
    return PoolRow(*row[:n]), SubscriptionRow(*row[n:])


def seats_of(u: Unit, pool: Pool, user_ids: list[int], *, lock: bool = False) -> list[Seat]:
    seats = list(u.s.scalars(SEATS_OF[lock], {"pool": pool.id, "users": list(user_ids)}))
    if len(seats) != len(user_ids):
        missing = len(user_ids) - len(seats)
        raise StaleSelection(no_longer_held(missing))
    return seats


def assigned_count(u: Unit, pool_id: int) -> int:
    return u.s.scalar(select(func.count()).select_from(Seat).where(Seat.pool_id == pool_id)) or 0


def _page_rows(s, sql, params: dict, pg: int, size: int, total: int, last: int, key: PageKey | None):
    """(the rows of the page, its number): by keyset when the card gave a key, else by number,
    its first row found over the index from the nearer end (no OFFSET over joined rows)."""
    if key is not None:
        rel, (sort_key_, user_id) = key
        keyed = {**params, "key_sort": sort_key_, "key_id": user_id}
        if rel == "before":
            rows = execute_core(s, sql.before, {**keyed, "limit": size + 1}).all()
            if len(rows) > size:  # rows before these: a page in the middle
                return rows[:size][::-1], min(max(pg, 1), last)
            return execute_core(s, sql.first, params).all(), 0  # (reached the start: the first page, full)
        rows = execute_core(s, sql.after if rel == "after" else sql.at, keyed).all()
        if rows:
            return rows, min(max(pg, 1) if rel == "after" else pg, last)
        pg = last  # nothing from there on (the pool shrank): its last page
    if pg == 0:
        return execute_core(s, sql.first, params).all(), 0
    offset = pg * size
    if offset >= total:
        return [], pg
    if offset <= total // 2:
        first = execute_core(s, sql.key_from_start, {**params, "offset": offset}).first()
    else:
        first = execute_core(s, sql.key_from_end, {**params, "offset": total - 1 - offset}).first()
    if first is None:
        return [], pg
    return execute_core(s, sql.at, {**params, "key_sort": first[0], "key_id": first[1]}).all(), pg


class Pools:
    def __init__(self, units: Units, plans: PlanViews):
        self.units = units
        self.plans = plans

    def view(self, u: Unit, pool: Pool | PoolRow, sub: Subscription | SubscriptionRow, currency: str) -> PoolView:
        return self.views(u, [(pool, sub)], currency)[0]

    def views(self, u: Unit, rows: Sequence[tuple[Pool | PoolRow, Subscription | SubscriptionRow]],
              currency: str) -> list[PoolView]:
        """Views of several pools in a few grouped queries (not a few queries per pool)."""
        if not rows:
            return []
        s = u.s
        ids = [p.id for p, _ in rows]
        assigned = dict(execute_core(s, _ASSIGNED, {"pools": ids}).tuples().all())
        moves = execute_core(s, _DOWNGRADES, {"subscriptions": sorted({sub.id for _, sub in rows})}).all()
        down_out: dict[int, int] = {}
        down_in: dict[tuple[int, str], int] = {}
        for sub_id, pool_id, to_code, n in moves:
            down_out[pool_id] = down_out.get(pool_id, 0) + n
            down_in[(sub_id, to_code)] = down_in.get((sub_id, to_code), 0) + n
        rates: dict[int, Fraction] = {}
        views = []
        for pool, sub in rows:
            plan = u.catalog.plan(pool.plan_code)
            if sub.id not in rates:
                rates[sub.id] = rate_at(s, pool.account_id, sub.period_end)
            out = down_out.get(pool.id, 0)
            renewal_qty = pool.quantity - pool.removal_scheduled - out + down_in.get((sub.id, pool.plan_code), 0)
            price = plan.price(sub.interval)
            views.append(PoolView(
                id=pool.id, plan_code=plan.code, plan_name=plan.name, family=plan.family, rank=plan.rank,
                interval=sub.interval, quantity=pool.quantity, assigned=assigned.get(pool.id, 0),
                removal_scheduled=pool.removal_scheduled, downgrades_out=out, unit_price=price,
                currency=currency, period_start=sub.period_start, renewal_date=sub.period_end,
                renewal_quantity=renewal_qty,
                renewal_amount=pricing.renewal_amount(renewal_qty, price, rates[sub.id])))
        return views

    def _list_pools(self, u: Unit, caller: CallerView) -> list[PoolView]:
        rows = u.s.execute(_ACCOUNT_POOLS, {"account": caller.account_id}).all()
        views = self.views(u, [(p, sub) for p, sub in rows if p.quantity > 0 or p.removal_scheduled],
                           caller.currency)
        order = list(u.catalog.families)
        return sorted(views, key=lambda v: (order.index(v.family), v.rank, INTERVALS.index(v.interval)))

    def list_pools(self, actor: Actor) -> list[PoolView]:
        return self.units.query(actor, AuditAction.POOLS_LIST, self._list_pools)

    def pools_overview(self, actor: Actor) -> tuple[CallerView, list[PoolView]]:
        """The caller (an administrator) and the account's pools, read together (one transaction:
        ``require_admin`` then ``list_pools`` read the caller twice)."""
        return self.units.query(actor, AuditAction.POOLS_LIST, lambda u, caller: (caller, self._list_pools(u, caller)))

    def pool(self, actor: Actor, pool_id) -> PoolView:
        def fn(u: Unit, caller: CallerView):
            pool, sub = pool_and_subscription(u, caller, pool_id)
            return self.view(u, pool, sub, caller.currency)

        return self.units.query(actor, AuditAction.POOL_VIEW, fn, target=f"pool:{pool_id}")

    def _pool_users(self, u: Unit, caller: CallerView, pool: Pool | PoolRow, query, page, page_size, *,
                    clamp: bool = False, assigned: int | None = None, key: object = None) -> Page:
        """``assigned``: the pool's seat count, read in this transaction already (the total when
        there is no search); ``key``: from the card, the rows after, at or before a row (keyset
        paging: a :class:`~core.views.PageKey`, checked here), else the page is found by its number."""
        s = u.s
        q = clean_text(query, max_length=100, field="search text") or ""
        pg, size = page_args(page, page_size)
        checked = PageKey.of(key)
        terms = term_filter(caller.account_id, q, Seat.user_id)
        sql = pool_users_statements(*terms) if terms else _POOL_USERS
        if assigned is not None and not terms:
            total = assigned
        else:
            total = execute_core(s, sql.count, {"pool": pool.id}).scalar() or 0
        last = max(0, -(-total // size) - 1)
        if clamp and pg > last:  # past the end (the pool shrank): the last page
            pg = last
        rows, pg = _page_rows(s, sql, {"pool": pool.id, "now": u.now, "limit": size}, pg, size, total, last,
                              checked)
        items = [UserRow(id=r[0], name=r[1], email=r[2], plan_code=pool.plan_code, downgrade_to=r[3],
                         held_until=r[4], downgrade_to_name=self.plans.name_or_none(r[3])) for r in rows]
        return Page(items=items, total=total, page=pg, page_size=size, query=q,
                    first_key=(rows[0][5], rows[0][0]) if rows else None,
                    last_key=(rows[-1][5], rows[-1][0]) if rows else None)

    def pool_users(self, actor: Actor, pool_id, *, query: str | None = None, page=0,
                   page_size=PAGE_SIZE, key: object = None) -> Page:
        """The users holding a seat of a pool, by name, paged and searchable by name or e-mail."""
        return self.units.query(
            actor, AuditAction.POOL_USERS,
            lambda u, c: self._pool_users(u, c, load_pool(u, c, pool_id), query, page, page_size, key=key),
            target=f"pool:{pool_id}")

    def pool_page(self, actor: Actor, pool_id, *, query: str | None = None, page=0,
                  page_size=PAGE_SIZE, key: object = None) -> tuple[PoolView, Page]:
        """A pool and a page of its users, read together (one transaction: one consistent view); a
        page past the end (the pool shrank since the card was shown) gives the last page.
        ``key``: the card's Next / Previous / same page (a :class:`~core.views.PageKey`)."""

        def fn(u: Unit, caller: CallerView):
            pool, sub = pool_and_subscription(u, caller, pool_id)
            view = self.view(u, pool, sub, caller.currency)
            return view, self._pool_users(u, caller, pool, query, page, page_size, clamp=True,
                                          assigned=view.assigned, key=key)

        return self.units.query(actor, AuditAction.POOL_USERS, fn, target=f"pool:{pool_id}")

    def pool_rows(self, actor: Actor, pool_id, user_ids: list[int]) -> list[UserRow]:
        """The given users who hold a seat of this pool (others dropped), each with the downgrade
        scheduled for them, in the pool's order."""

        def fn(u: Unit, caller: CallerView):
            pool = load_pool(u, caller, pool_id)
            ids = parse_ids(list(user_ids)) if user_ids else []
            rows: list = []
            for chunk in chunks(ids):
                rows += u.s.execute(select(User.id, User.name, User.email, Seat.downgrade_to, Seat.sort_key)
                                    .join(Seat, Seat.user_id == User.id)
                                    .where(Seat.pool_id == pool.id, User.id.in_(chunk))).all()
            rows.sort(key=lambda r: (r[4], r[0]))
            return [UserRow(id=r[0], name=r[1], email=r[2], plan_code=pool.plan_code, downgrade_to=r[3])
                    for r in rows]

        return self.units.query(actor, AuditAction.POOL_ROWS, fn, target=f"pool:{pool_id}")
