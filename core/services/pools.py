"""License pools: loading one of the caller's account, their views, and the pages of their users."""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, func, select

from core import pricing
from core.catalog import INTERVALS
from core.errors import Message, NotFound, StaleSelection, no_longer_held
from core.kinds import AuditAction
from core.models import Pool, Seat, Subscription, User
from core.services.periods import rate_at
from core.services.plans import PlanViews
from core.services.shared import PAGE_SIZE, SEATS_OF, chunks, locked, page_args, pool_users_statements, term_filter
from core.text import clean_text, parse_id, parse_ids
from core.views import Actor, CallerView, Page, PoolView, UserRow

if TYPE_CHECKING:
    from core.unit_of_work import Unit, Units

NO_SUCH_POOL = Message("That license pool does not exist in your account (it may have been removed).")

_POOL = select(Pool).where(Pool.id == bindparam("pool"), Pool.account_id == bindparam("account"))
_POOL_LOCKED = locked(_POOL, True)
_POOL_AND_SUBSCRIPTION = (select(Pool, Subscription).join(Subscription, Subscription.id == Pool.subscription_id)
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


def pool_and_subscription(u: Unit, caller: CallerView, pool_id) -> tuple[Pool, Subscription]:
    """:func:`load_pool` and its subscription, in one query (the read paths)."""
    pid = parse_id(pool_id, "pool")
    row = u.s.execute(_POOL_AND_SUBSCRIPTION, {"pool": pid, "account": caller.account_id}).first()
    if row is None:
        raise NotFound(NO_SUCH_POOL)
    return row[0], row[1]


def seats_of(u: Unit, pool: Pool, user_ids: list[int], *, lock: bool = False) -> list[Seat]:
    seats = list(u.s.scalars(SEATS_OF[lock], {"pool": pool.id, "users": list(user_ids)}))
    if len(seats) != len(user_ids):
        missing = len(user_ids) - len(seats)
        raise StaleSelection(no_longer_held(missing))
    return seats


def assigned_count(u: Unit, pool_id: int) -> int:
    return u.s.scalar(select(func.count()).select_from(Seat).where(Seat.pool_id == pool_id)) or 0


class Pools:
    def __init__(self, units: Units, plans: PlanViews):
        self.units = units
        self.plans = plans

    def view(self, u: Unit, pool: Pool, sub: Subscription, currency: str) -> PoolView:
        return self.views(u, [(pool, sub)], currency)[0]

    def views(self, u: Unit, rows: list[tuple[Pool, Subscription]], currency: str) -> list[PoolView]:
        """Views of several pools in a few grouped queries (not a few queries per pool)."""
        if not rows:
            return []
        s = u.s
        ids = [p.id for p, _ in rows]
        assigned = dict(s.execute(_ASSIGNED, {"pools": ids}).tuples().all())
        moves = s.execute(_DOWNGRADES, {"subscriptions": sorted({sub.id for _, sub in rows})}).all()
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

    def _pool_users(self, u: Unit, caller: CallerView, pool: Pool, query, page, page_size, *,
                    clamp: bool = False, assigned: int | None = None) -> Page:
        """``assigned``: the pool's seat count, read in this transaction already (the total when
        there is no search)."""
        s = u.s
        q = clean_text(query, max_length=100, field="search text") or ""
        pg, size = page_args(page, page_size)
        terms = term_filter(caller.account_id, q, Seat.user_id)
        count_q, page_q = pool_users_statements(*terms) if terms else _POOL_USERS
        total = assigned if assigned is not None and not terms else s.scalar(count_q, {"pool": pool.id}) or 0
        if clamp and pg and pg * size >= total:  # past the end (the pool shrank): the last page
            pg = max(0, -(-total // size) - 1)
        rows = s.execute(page_q, {"pool": pool.id, "now": u.now, "limit": size, "offset": pg * size}).all()
        items = [UserRow(id=r[0], name=r[1], email=r[2], plan_code=pool.plan_code, downgrade_to=r[3],
                         held_until=r[4], downgrade_to_name=self.plans.name_or_none(r[3])) for r in rows]
        return Page(items=items, total=total, page=pg, page_size=size, query=q)

    def pool_users(self, actor: Actor, pool_id, *, query: str | None = None, page=0,
                   page_size=PAGE_SIZE) -> Page:
        """The users holding a seat of a pool, by name, paged and searchable by name or e-mail."""
        return self.units.query(
            actor, AuditAction.POOL_USERS,
            lambda u, c: self._pool_users(u, c, load_pool(u, c, pool_id), query, page, page_size),
            target=f"pool:{pool_id}")

    def pool_page(self, actor: Actor, pool_id, *, query: str | None = None, page=0,
                  page_size=PAGE_SIZE) -> tuple[PoolView, Page]:
        """A pool and a page of its users, read together (one transaction: one consistent view); a
        page past the end (the pool shrank since the card was shown) gives the last page."""

        def fn(u: Unit, caller: CallerView):
            pool, sub = pool_and_subscription(u, caller, pool_id)
            view = self.view(u, pool, sub, caller.currency)
            return view, self._pool_users(u, caller, pool, query, page, page_size, clamp=True, assigned=view.assigned)

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
