"""Downgrades: users scheduled to move to a lower plan at the period end (they keep their tier
until then)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from core.errors import InvalidInput, Message, NotADowngrade, WrongFamily
from core.kinds import AuditAction, OutboxKind
from core.models import Subscription
from core.services.periods import current, queue_billing_sync
from core.services.plans import PlanViews
from core.services.pools import Pools, load_pool, seats_of
from core.services.quote_lifecycle import check_not_held
from core.text import parse_ids
from core.views import Actor, CallerView, PlanView, PoolView

if TYPE_CHECKING:
    from core.unit_of_work import Unit, Units


class Downgrades:
    def __init__(self, units: Units, plans: PlanViews, pools: Pools):
        self.units = units
        self.plans = plans
        self.pools = pools

    def downgrade_options(self, actor: Actor, pool_id) -> list[PlanView]:
        def fn(u: Unit, caller: CallerView):
            plan = u.catalog.plan(load_pool(u, caller, pool_id).plan_code)
            return [self.plans.plan_view(p) for p in u.catalog.lower_plans(plan) if p.currency == caller.currency]

        return self.units.query(actor, AuditAction.DOWNGRADE_OPTIONS, fn, target=f"pool:{pool_id}")

    def schedule_downgrade(self, actor: Actor, pool_id, user_ids, to_plan) -> PoolView:
        """Move users to a lower plan at the period end; they keep their tier until then."""

        def fn(u: Unit, caller: CallerView):
            s, now, catalog = u.s, u.now, u.catalog
            pool = load_pool(u, caller, pool_id, lock=True)
            sub = current(u, s.get_one(Subscription, pool.subscription_id), now)  # before reading the seats
            seats = seats_of(u, pool, parse_ids(user_ids), lock=True)
            plan_a = catalog.plan(pool.plan_code)
            if not isinstance(to_plan, str) or not to_plan:
                raise InvalidInput(Message("Choose the plan to downgrade to."))
            plan_b = catalog.plan(to_plan)
            if plan_b.family != plan_a.family:
                raise WrongFamily(Message("{plan} is not in the same family as {current}.", plan=plan_b.name,
                                          current=plan_a.name))
            if plan_b.rank >= plan_a.rank:
                raise NotADowngrade(Message("{plan} is not below {current}: a downgrade goes to a lower tier.",
                                            plan=plan_b.name, current=plan_a.name))
            catalog.priced_plan(plan_b.code, sub.interval, caller.currency)
            check_not_held(u, [seat.id for seat in seats], now, by=caller.user_id)
            # a replayed schedule (double click) changes nobody and tells nobody twice
            seats = [seat for seat in seats if seat.downgrade_to != plan_b.code]
            if not seats:
                raise InvalidInput(Message("The downgrade to {plan} is already scheduled for the selected users "
                                           "({date:%Y-%m-%d}). Nothing was changed.", plan=plan_b.name,
                                           date=sub.period_end))
            for seat in seats:
                seat.downgrade_to = plan_b.code
                u.outbox(account_id=caller.account_id, kind=OutboxKind.DOWNGRADE_SCHEDULED,
                         user_id=seat.user_id, dedupe_key=f"downgrade-scheduled:{seat.id}:{uuid.uuid4().hex}",
                         payload={"from_plan": plan_a.code, "to_plan": plan_b.code,
                                  "effective": sub.period_end.isoformat()})
            u.audit_ok(caller, AuditAction.DOWNGRADE_SCHEDULED, f"pool:{pool.id}",
                       {"to": plan_b.code, "users": len(seats), "effective": sub.period_end.isoformat()})
            s.flush()
            queue_billing_sync(u, sub, f"downgrade:{pool.id}:{now.isoformat()}")
            return self.pools.view(u, pool, sub, caller.currency)

        return self.units.command(actor, AuditAction.DOWNGRADE_SCHEDULE, fn, target=f"pool:{pool_id}")

    def cancel_downgrade(self, actor: Actor, pool_id, user_ids) -> PoolView:
        def fn(u: Unit, caller: CallerView):
            s, now = u.s, u.now
            pool = load_pool(u, caller, pool_id, lock=True)
            sub = current(u, s.get_one(Subscription, pool.subscription_id), now)  # past ends apply first
            seats = [seat for seat in seats_of(u, pool, parse_ids(user_ids), lock=True) if seat.downgrade_to]
            if not seats:
                raise InvalidInput(Message("None of these users has a downgrade scheduled."))
            for seat in seats:
                seat.downgrade_to = None
                u.outbox(account_id=caller.account_id, kind=OutboxKind.DOWNGRADE_CANCELLED,
                         user_id=seat.user_id, dedupe_key=f"downgrade-cancelled:{seat.id}:{uuid.uuid4().hex}",
                         payload={"plan": pool.plan_code})
            u.audit_ok(caller, AuditAction.DOWNGRADE_CANCELLED, f"pool:{pool.id}", {"users": len(seats)})
            s.flush()
            queue_billing_sync(u, sub, f"downgrade-cancel:{pool.id}:{now.isoformat()}")
            return self.pools.view(u, pool, sub, caller.currency)

        return self.units.command(actor, AuditAction.DOWNGRADE_CANCEL, fn, target=f"pool:{pool_id}")
