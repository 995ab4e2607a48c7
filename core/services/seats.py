"""Seats: assigning and unassigning users, removing free seats at renewal, and one's own license."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import TYPE_CHECKING

from sqlalchemy import select

from core import pricing
from core.errors import InvalidInput, Message, NoFreeSeat, SeatAlreadyHeld, SeatsAssigned
from core.kinds import AuditAction, OutboxKind
from core.models import Pool, Seat, Subscription, User
from core.services.accounts import check_domain, load_user
from core.services.periods import current, queue_billing_sync, rate_at
from core.services.plans import PlanViews
from core.services.pools import Pools, assigned_count, load_pool, seats_of
from core.services.quote_lifecycle import check_not_held
from core.text import parse_ids, parse_quantity
from core.views import Actor, CallerView, PoolView, SeatView

if TYPE_CHECKING:
    from core.unit_of_work import Unit, Units


class Seats:
    def __init__(self, units: Units, plans: PlanViews, pools: Pools):
        self.units = units
        self.plans = plans
        self.pools = pools

    def assign(self, actor: Actor, user_id, pool_id) -> PoolView:
        def fn(u: Unit, caller: CallerView):
            s, now, catalog = u.s, u.now, u.catalog
            pool = load_pool(u, caller, pool_id, lock=True)
            user = load_user(u, caller, user_id)
            # one assignment of this user at a time (two pools of a family are two pool locks): the
            # check below then sees the seat a concurrent assignment committed, and refuses clearly
            s.execute(select(User.id).where(User.id == user.id).with_for_update())
            plan = catalog.plan(pool.plan_code)
            check_domain(u, caller.account_id, user.email)
            held = s.execute(select(Pool.plan_code).select_from(Seat).join(Pool, Pool.id == Seat.pool_id)
                             .where(Seat.user_id == user.id, Seat.family == plan.family)).first()
            if held:
                raise SeatAlreadyHeld(Message("{name} already holds a {plan} license ({family} family). Upgrade or "
                                              "unassign it instead.", name=user.name,
                                              plan=self.plans.name_or_none(held[0]),
                                              family=catalog.families[plan.family]))
            sub = current(u, s.get_one(Subscription, pool.subscription_id), now)
            if pool.quantity - assigned_count(u, pool.id) - pool.removal_scheduled <= 0:
                raise NoFreeSeat(Message("There is no free {plan} seat in this pool. Buy one, or unassign someone "
                                         "first.", plan=plan.name), plan=plan.code, interval=sub.interval)
            s.add(Seat(account_id=caller.account_id, pool_id=pool.id, user_id=user.id, family=plan.family,
                       sort_key=user.sort_key, assigned_at=now, plan_since=now))
            s.flush()
            u.outbox(account_id=caller.account_id, kind=OutboxKind.LICENSE_ASSIGNED, user_id=user.id,
                     dedupe_key=f"assign:{pool.id}:{user.id}:{uuid.uuid4().hex}",
                     payload={"plan": plan.code, "interval": sub.interval, "by": caller.name})
            u.audit_ok(caller, AuditAction.SEAT_ASSIGNED, f"user:{user.id}", {"pool": pool.id, "plan": plan.code})
            return self.pools.view(u, pool, sub, caller.currency)

        return self.units.command(actor, AuditAction.SEAT_ASSIGN, fn, target=f"user:{user_id}")

    def unassign(self, actor: Actor, pool_id, user_ids) -> PoolView:
        def fn(u: Unit, caller: CallerView):
            s, now = u.s, u.now
            pool = load_pool(u, caller, pool_id, lock=True)
            sub = current(u, s.get_one(Subscription, pool.subscription_id), now)
            seats = seats_of(u, pool, parse_ids(user_ids), lock=True)
            check_not_held(u, [seat.id for seat in seats], now, by=caller.user_id)
            for seat in seats:
                s.delete(seat)
                # seat ids come back on SQLite (no AUTOINCREMENT): the key also names the user and the time
                u.outbox(account_id=caller.account_id, kind=OutboxKind.LICENSE_UNASSIGNED,
                         user_id=seat.user_id, dedupe_key=f"unassign:{seat.id}:{seat.user_id}:{uuid.uuid4().hex}",
                         payload={"plan": pool.plan_code, "by": caller.name})
            u.audit_ok(caller, AuditAction.SEAT_UNASSIGNED, f"pool:{pool.id}",
                       {"users": [seat.user_id for seat in seats][:50], "count": len(seats)})
            s.flush()
            return self.pools.view(u, pool, sub, caller.currency)

        return self.units.command(actor, AuditAction.SEAT_UNASSIGN, fn, target=f"pool:{pool_id}")

    @staticmethod
    def _check_removable(u: Unit, pool: Pool, n: int) -> None:
        free = pool.quantity - assigned_count(u, pool.id) - pool.removal_scheduled
        if n > free:
            raise SeatsAssigned(Message.counted("Only {free} seat of this pool is free. Unassign users first, then "
                                                "remove their seats.",
                                                "Only {free} seats of this pool are free. Unassign users first, then "
                                                "remove their seats.", "free", free=max(free, 0)), free=max(free, 0))

    def remove_seats(self, actor: Actor, pool_id, quantity, *, expected_scheduled: int | None = None) -> PoolView:
        """Remove free seats at the period end (nothing is refunded). ``expected_scheduled``: the
        removal the caller saw scheduled; if it changed meanwhile (a double click, another
        admin), nothing is done."""

        def fn(u: Unit, caller: CallerView):
            s = u.s
            pool = load_pool(u, caller, pool_id, lock=True)
            n = parse_quantity(quantity)
            sub = current(u, s.get_one(Subscription, pool.subscription_id))  # before scheduling
            if expected_scheduled is not None and pool.removal_scheduled != expected_scheduled:
                raise InvalidInput(Message.counted("The seats to remove from this pool changed since this card was "
                                                   "shown: {scheduled} now leaves at renewal. Nothing more was "
                                                   "removed.",
                                                   "The seats to remove from this pool changed since this card was "
                                                   "shown: {scheduled} now leave at renewal. Nothing more was "
                                                   "removed.", "scheduled", scheduled=pool.removal_scheduled),
                                   scheduled=pool.removal_scheduled)
            self._check_removable(u, pool, n)
            pool.removal_scheduled += n
            u.audit_ok(caller, AuditAction.SEATS_REMOVAL_SCHEDULED, f"pool:{pool.id}",
                       {"quantity": n, "effective": sub.period_end.isoformat()})
            s.flush()
            queue_billing_sync(u, sub, f"removal:{pool.id}:{pool.removal_scheduled}:{u.now.isoformat()}")
            return self.pools.view(u, pool, sub, caller.currency)

        return self.units.command(actor, AuditAction.SEATS_REMOVE, fn, target=f"pool:{pool_id}")

    def preview_removal(self, actor: Actor, pool_id, quantity) -> PoolView:
        """The pool as it would be after :meth:`remove_seats` (same checks; nothing written):
        its renewal quantity and amount without the seats removed."""

        def fn(u: Unit, caller: CallerView):
            s = u.s
            pool = load_pool(u, caller, pool_id)
            n = parse_quantity(quantity)
            self._check_removable(u, pool, n)
            sub = s.get_one(Subscription, pool.subscription_id)
            view = self.pools.view(u, pool, sub, caller.currency)
            qty = view.renewal_quantity - n
            d_next = rate_at(s, pool.account_id, sub.period_end)
            return replace(view, removal_scheduled=view.removal_scheduled + n, renewal_quantity=qty,
                           renewal_amount=pricing.renewal_amount(qty, view.unit_price, d_next))

        return self.units.query(actor, AuditAction.SEATS_REMOVE_PREVIEW, fn, target=f"pool:{pool_id}")

    def cancel_removal(self, actor: Actor, pool_id) -> PoolView:
        def fn(u: Unit, caller: CallerView):
            s = u.s
            pool = load_pool(u, caller, pool_id, lock=True)
            sub = current(u, s.get_one(Subscription, pool.subscription_id))  # past ends apply first
            pool.removal_scheduled = 0
            u.audit_ok(caller, AuditAction.SEATS_REMOVAL_CANCELLED, f"pool:{pool.id}")
            s.flush()
            queue_billing_sync(u, sub, f"removal:{pool.id}:0:{u.now.isoformat()}")
            return self.pools.view(u, pool, sub, caller.currency)

        return self.units.command(actor, AuditAction.SEATS_REMOVE_CANCEL, fn, target=f"pool:{pool_id}")

    def my_license(self, actor: Actor) -> list[SeatView]:
        def fn(u: Unit, caller: CallerView):
            rows = u.s.execute(select(Seat, Pool, Subscription).join(Pool, Pool.id == Seat.pool_id)
                               .join(Subscription, Subscription.id == Pool.subscription_id)
                               .where(Seat.user_id == caller.user_id)).all()
            out = []
            for seat, pool, sub in rows:
                plan = u.catalog.plan(pool.plan_code)
                out.append(SeatView(plan_code=plan.code, plan_name=plan.name, family=plan.family,
                                    interval=sub.interval, pool_id=pool.id, since=seat.plan_since,
                                    renewal_date=sub.period_end, downgrade_to=seat.downgrade_to,
                                    downgrade_to_name=self.plans.name_or_none(seat.downgrade_to),
                                    higher_plans=[self.plans.plan_view(p) for p in u.catalog.higher_plans(plan)
                                                  if p.currency == caller.currency]))
            return sorted(out, key=lambda v: v.family)

        return self.units.query(actor, AuditAction.MY_LICENSE, fn, admin=False)
