"""Billing periods: discounts in force, the roll-over (scheduled removals and downgrades
applied at renewal), and what the payment provider must bill from the next renewal."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from fractions import Fraction
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.orm import Session

from core import pricing
from core.db import conflict_insert
from core.kinds import AuditAction, OutboxKind
from core.models import Account, Discount, Pool, Seat, Subscription
from core.payments import SubscriptionItemChange, SubscriptionSync
from core.periods import period_bounds
from core.services.shared import execute_core

if TYPE_CHECKING:
    from core.unit_of_work import Unit, Units

_DISCOUNT_AT = (select(Discount)
                .where(Discount.account_id == bindparam("account"), Discount.starts_at <= bindparam("at"),
                       or_(Discount.ends_at.is_(None), Discount.ends_at > bindparam("after")))
                .order_by(Discount.starts_at.desc(), Discount.id.desc())
                .limit(1))


def discount_at(s: Session, account_id: int, t: datetime) -> Discount | None:
    return s.scalars(_DISCOUNT_AT, {"account": account_id, "at": t, "after": t}).first()


_PERCENT_AT = _DISCOUNT_AT.with_only_columns(Discount.percent_off)


def rate_at(s: Session, account_id: int, t: datetime) -> Fraction:
    """The rate to pay at ``t`` after the discount then in force (its percentage only: read as a
    column, not a Discount)."""
    percent = execute_core(s, _PERCENT_AT, {"account": account_id, "at": t, "after": t}).first()
    return pricing.discount_rate(percent[0] if percent else None)


def current(u: Unit, sub: Subscription, now: datetime | None = None) -> Subscription:
    """The subscription with its period rolled over up to ``now`` (applying what was scheduled)."""
    now = u.now if now is None else now
    while sub.period_end <= now:
        roll_one_period(u, sub)
    return sub


def get_or_create_pool(u: Unit, sub: Subscription, plan_code: str, *, created_at: datetime | None = None) -> Pool:
    """The subscription's pool of that plan, locked; created once even when two settlements (in
    two processes), or a settlement and a downgrade at renewal, need it at the same moment."""
    s = u.s
    q = select(Pool).where(Pool.subscription_id == sub.id, Pool.plan_code == plan_code).with_for_update()
    pool = s.scalars(q).first()
    if pool is None:
        s.execute(conflict_insert(s, Pool).values(
            account_id=sub.account_id, subscription_id=sub.id, plan_code=plan_code, quantity=0,
            removal_scheduled=0, created_at=created_at or u.now).on_conflict_do_nothing(
            index_elements=[Pool.subscription_id, Pool.plan_code]))
        pool = s.scalars(q).one()
    return pool


def roll_one_period(u: Unit, sub: Subscription) -> None:
    s = u.s
    boundary = sub.period_end
    pools = s.scalars(select(Pool).where(Pool.subscription_id == sub.id).with_for_update()).all()
    by_plan = {p.plan_code: p for p in pools}
    for pool in pools:
        if pool.removal_scheduled:
            u.audit_ok(None, AuditAction.SEATS_REMOVED, f"pool:{pool.id}",
                       {"quantity": pool.removal_scheduled, "plan": pool.plan_code}, account_id=sub.account_id)
            pool.quantity -= pool.removal_scheduled
            pool.removal_scheduled = 0
    moving = s.execute(
        select(Seat, Pool.plan_code).join(Pool, Pool.id == Seat.pool_id)
        .where(Pool.subscription_id == sub.id, Seat.downgrade_to.is_not(None))
    ).all()
    for seat, from_code in moving:
        target = by_plan.get(seat.downgrade_to)
        if target is None:
            target = by_plan[seat.downgrade_to] = get_or_create_pool(u, sub, seat.downgrade_to, created_at=boundary)
        source = by_plan[from_code]
        source.quantity -= 1
        target.quantity += 1
        seat.pool_id = target.id
        seat.plan_since = boundary
        to_code = seat.downgrade_to
        seat.downgrade_to = None
        u.outbox(account_id=sub.account_id, kind=OutboxKind.DOWNGRADE_APPLIED,
                 user_id=seat.user_id, dedupe_key=f"downgrade:{seat.id}:{boundary.isoformat()}",
                 payload={"from_plan": from_code, "to_plan": to_code, "effective": boundary.isoformat()})
        u.audit_ok(None, AuditAction.SEAT_DOWNGRADED, f"user:{seat.user_id}", {"from": from_code, "to": to_code},
                   account_id=sub.account_id)
    sub.period_number += 1
    sub.period_start, sub.period_end = period_bounds(sub.anchor_at, sub.interval, sub.period_number)
    s.flush()
    u.audit_ok(None, AuditAction.PERIOD_ROLLED_OVER, f"subscription:{sub.id}",
               {"interval": sub.interval, "start": sub.period_start.isoformat(),
                "end": sub.period_end.isoformat()}, account_id=sub.account_id)
    queue_billing_sync(u, sub, f"rollover:{sub.id}:{sub.period_number}")


def queue_billing_sync(u: Unit, sub: Subscription, key: str) -> None:
    """After a change that alters what the provider must bill at the next renewal, queue a sync
    of the linked subscription. The desired items are read when the sync is delivered, not
    now, so that syncs delivered late or out of order still leave the latest state."""
    if not sub.external_ref:
        return
    u.outbox(account_id=sub.account_id, kind=OutboxKind.SYNC_SUBSCRIPTION,
             dedupe_key=f"billing:{key}:{uuid.uuid4().hex[:12]}", payload={"subscription_id": sub.id})


class BillingPeriods:
    def __init__(self, units: Units):
        self.units = units

    def roll_over(self) -> int:
        """The period roll-over job: start the next period of every subscription whose period
        ended, applying scheduled removals and downgrades. Returns how many periods rolled."""

        def work(u: Unit) -> int:
            n = 0
            for sub in u.s.scalars(select(Subscription).where(Subscription.period_end <= u.now).with_for_update()):
                while sub.period_end <= u.now:
                    roll_one_period(u, sub)
                    n += 1
            return n

        return self.units.system_write(work)

    def _renewal_items(self, u: Unit, sub: Subscription) -> list[SubscriptionItemChange]:
        """What the subscription bills from its next renewal: bought seats less scheduled removals,
        with scheduled downgrades counted in their new plan."""
        s = u.s
        account = s.get_one(Account, sub.account_id)
        qty: dict[str, int] = {}
        for pool in s.scalars(select(Pool).where(Pool.subscription_id == sub.id)):
            qty[pool.plan_code] = qty.get(pool.plan_code, 0) + pool.quantity - pool.removal_scheduled
        moves = s.execute(select(Pool.plan_code, Seat.downgrade_to, func.count()).select_from(Seat)
                          .join(Pool, Pool.id == Seat.pool_id)
                          .where(Pool.subscription_id == sub.id, Seat.downgrade_to.is_not(None))
                          .group_by(Pool.plan_code, Seat.downgrade_to)).all()
        for src, dst, n in moves:
            qty[src] -= n
            qty[dst] = qty.get(dst, 0) + n
        return [SubscriptionItemChange(plan_code=code, interval=sub.interval, quantity=n,
                                       unit_amount=u.catalog.plan(code).price(sub.interval),
                                       currency=account.currency)
                for code, n in sorted(qty.items()) if n > 0]

    def subscription_sync(self, payload: dict) -> SubscriptionSync | None:
        """The provider-side state a billing outbox message asks for, read now (None: the
        subscription is no longer linked to the provider)."""
        with self.units.system_read() as u:
            sub = u.s.get(Subscription, payload.get("subscription_id"))
            if sub is None or not sub.external_ref:
                return None
            items = tuple(self._renewal_items(u, sub))
        digest = hashlib.sha256(repr([(i.plan_code, i.quantity, i.unit_amount) for i in items]).encode()).hexdigest()
        return SubscriptionSync(subscription_ref=sub.external_ref, items=items,
                                idempotency_key=f"sync-{sub.id}-{digest[:24]}")
