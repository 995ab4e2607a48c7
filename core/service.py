"""The licensing core: every chat flow is a call into :class:`Licensing`.

Each public method takes the :class:`~core.views.Actor` asking, re-reads the account and
re-checks every id and right (the server decides; card data is never trusted), does its
work in one transaction, and returns plain views. A refused operation raises a
:class:`~core.errors.DomainError`, writes nothing but its audit event, and the message it
carries is fit for a person.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import logging
import uuid
from collections.abc import Callable, Collection
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from sqlalchemy import Integer, and_, bindparam, delete, exists, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import pricing
from core.catalog import INTERVALS, Catalog, Plan
from core.db import Database, conflict_insert, utcnow
from core.errors import (
    CurrencyMismatch,
    DomainError,
    DomainNotApproved,
    HeldByQuote,
    InvalidInput,
    Message,
    NoFreeSeat,
    NotAdmin,
    NotADowngrade,
    NotAnUpgrade,
    NotFound,
    PaymentRefused,
    PaymentUnavailable,
    QuoteNotOpen,
    RequestClosed,
    SeatAlreadyHeld,
    SeatsAssigned,
    UnknownCaller,
    WrongFamily,
    no_longer_held,
)
from core.models import (
    Account,
    AccountDomain,
    AccountTenant,
    AuditEvent,
    DeliveryAddress,
    Discount,
    OutboxMessage,
    Payment,
    PaymentEventRecord,
    Pool,
    PostedCard,
    Quote,
    QuoteHold,
    Seat,
    Subscription,
    UpgradeRequest,
    User,
    UserTerm,
)
from core.payments import (
    CarryForward,
    PaymentEvent,
    PaymentGateway,
    PaymentLine,
    PaymentProviderError,
    PaymentRequest,
    SandboxGateway,
    SubscriptionItemChange,
    SubscriptionSync,
)
from core.periods import add_intervals, period_bounds, period_containing
from core.text import clean_text, fold, parse_id, parse_ids, parse_quantity, search_terms, sort_key, words
from core.views import (
    Actor,
    AuditRow,
    CallerView,
    EventResult,
    OutboxItem,
    Page,
    PayPage,
    PlanView,
    PoolView,
    QuoteLineView,
    QuoteView,
    RenewalView,
    RequestView,
    SeatView,
    UserRow,
)

log = logging.getLogger(__name__)

PAGE_SIZE = 20
MAX_PAGE_SIZE = 50
MAX_CART_LINES = 20
MAX_OUTBOX_ATTEMPTS = 25
ANSWERING = timedelta(seconds=30)  # longer than Teams waits for an invoke's answer (~10-15 s)
OUTBOX_CLAIM_LOCK = 0x4C44_4F42  # pg_advisory_xact_lock key serialising claims by account ("LDOB")
SYSTEM = "system"
NO_SUCH_POOL = Message("That license pool does not exist in your account (it may have been removed).")
QUOTE_NOT_OPEN = {
    "expired": Message("This quote has expired; nothing was charged. Prepare a new one to see today's amounts."),
    "paid": Message("This quote is already paid."),
    "cancelled": Message("This quote was cancelled; nothing was charged."),
    "refund_needed": Message("This quote could not be applied after payment; our team has been told to refund it."),
}
REFUND_CLOSED = Message("The payment arrived after the quote was closed (cancelled or expired); it was not applied.")
REFUND_OTHER_PERIOD = Message("The payment arrived after the billing period the quote was priced in had ended; it "
                              "was not applied. Prepare a new quote for the current period.")
PAYMENT_NO_ANSWER = Message("The payment service did not answer. Nothing was charged; please try again in a minute.")
PAYMENT_FAILED_NOW = Message("The payment service could not create the payment link just now. Nothing was charged; "
                             "please try again in a minute.")
PAYMENT_REFUSED = {
    "credentials": Message("The payment service refused this server's credentials, so no payment link can be "
                           "created. Nothing was charged. Ask whoever runs License Desk to check its payment "
                           "settings: trying again will not help until then."),
    "request": Message("The payment service refused to create a payment link for this quote. Nothing was charged. "
                       "Ask whoever runs License Desk to check the account's billing profile and the payment "
                       "settings: trying again will not help until then."),
}


def _as_fraction(percent: Decimal | None) -> Fraction:
    return pricing.discount_rate(percent)


# ---------------------------------------------------------------------------- statements of the hot paths
# The queries of nearly every chat turn (who is calling, a pool and its views, a page of its users, a quote),
# built once with bound parameters. Built per call, a statement costs ~0.1 ms to build and ~0.15 ms more
# for SQLAlchemy to compute its cache key (to find its compiled form): as much as running it on SQLite.


def _locked(q, lock: bool):
    return q.with_for_update() if lock else q


def _pool_users_statements(*conds):
    """(count, page) of a pool's seat holders, by name; ``conds``: the search's term filters."""
    where = (Seat.pool_id == bindparam("pool"), *conds)
    count = select(func.count()).select_from(Seat).where(*where)
    page = (select(User.id, User.name, User.email, Seat.downgrade_to, QuoteHold.expires_at)
            .select_from(Seat).join(User, User.id == Seat.user_id)
            .outerjoin(QuoteHold, and_(QuoteHold.seat_id == Seat.id, QuoteHold.expires_at > bindparam("now")))
            .where(*where).order_by(Seat.sort_key, Seat.user_id)
            .limit(bindparam("limit", type_=Integer)).offset(bindparam("offset", type_=Integer)))
    return count, page


_CALLER = (select(User.id, User.name, User.email, User.role, Account.id, Account.name, Account.currency)
           .select_from(User).join(Account, Account.id == User.account_id)
           .join(AccountTenant, AccountTenant.account_id == Account.id)
           .where(AccountTenant.tenant_id == bindparam("tenant"), User.aad_object_id == bindparam("aad")))
_POOL = select(Pool).where(Pool.id == bindparam("pool"), Pool.account_id == bindparam("account"))
_POOL_LOCKED = _locked(_POOL, True)
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
_DISCOUNT_AT = (select(Discount)
                .where(Discount.account_id == bindparam("account"), Discount.starts_at <= bindparam("at"),
                       or_(Discount.ends_at.is_(None), Discount.ends_at > bindparam("after")))
                .order_by(Discount.starts_at.desc(), Discount.id.desc())
                .limit(1))
_POOL_USERS = _pool_users_statements()

# (of the caller's account?, locked?)
_QUOTE = {(mine, lock): _locked(select(Quote).where(Quote.id == bindparam("quote"),
                                                    *([Quote.account_id == bindparam("account")] if mine else [])),
                                lock)
          for mine in (False, True) for lock in (False, True)}
_QUOTE_PAYMENT = select(Payment).where(Payment.quote_id == bindparam("quote"))
_USER_ROWS = select(User.id, User.name, User.email).where(User.id.in_(bindparam("users", expanding=True)))
_USER_NAME = select(User.name).where(User.id == bindparam("user"))
_SEATS_OF = {lock: _locked(select(Seat).where(Seat.pool_id == bindparam("pool"),
                                               Seat.user_id.in_(bindparam("users", expanding=True)))
                            .order_by(Seat.sort_key, Seat.id), lock)
             for lock in (False, True)}  # (locked?)
_HELD = {but: (select(User.name, Quote.expires_at, Quote.id, Quote.created_by)
               .select_from(QuoteHold).join(Quote, Quote.id == QuoteHold.quote_id)
               .join(User, User.id == Quote.created_by)
               .where(QuoteHold.seat_id.in_(bindparam("seats", expanding=True)),
                      QuoteHold.expires_at > bindparam("now"), Quote.status == "open",
                      *([Quote.id != bindparam("quote")] if but else []))
               .limit(1))
         for but in (False, True)}  # (one quote's own holds left out?)


class Licensing:
    def __init__(
        self,
        db: Database,
        catalog: Catalog | None = None,
        gateway: PaymentGateway | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
        quote_ttl: timedelta = timedelta(minutes=30),
    ):
        self.db = db
        self.catalog = catalog or Catalog.load()
        self.gateway = gateway
        self.clock = clock
        self.quote_ttl = quote_ttl

    # ------------------------------------------------------------------ plumbing

    def now(self) -> datetime:
        return self.clock().replace(microsecond=0)

    def _caller(self, s: Session, actor: Actor, *, admin: bool) -> CallerView:
        if not isinstance(actor, Actor) or not actor.tenant_id or not actor.aad_object_id:
            raise UnknownCaller(Message("I could not tell who you are. Please open License Desk from Microsoft Teams."),
                                reason="anonymous")
        row = s.execute(_CALLER, {"tenant": actor.tenant_id.lower(), "aad": actor.aad_object_id}).first()
        if row is None:
            known = s.scalar(select(AccountTenant.account_id).where(AccountTenant.tenant_id == actor.tenant_id.lower()))
            if known is None:
                raise UnknownCaller(Message(
                    "Your organisation has no License Desk account yet. Ask your IT administrator to set one up."
                ))
            whom, admins = self._whom_to_ask(s, known)
            if whom:
                message = Message("You are not a user of your organisation's License Desk account yet. "
                                  "Ask {whom} to add you.", whom=whom)
            else:
                message = Message("You are not a user of your organisation's License Desk account yet. "
                                  "Ask one of its administrators to add you.")
            raise UnknownCaller(message, account_id=known, **admins)
        user_id, name, email, role, account_id, account_name, currency = row  # (columns: no ORM objects to build)
        caller = CallerView(
            account_id=account_id,
            account_name=account_name,
            currency=currency,
            user_id=user_id,
            name=name,
            email=email,
            role=role,
            tenant_id=actor.tenant_id.lower(),
        )
        if admin and not caller.is_admin:
            whom, admins = self._whom_to_ask(s, account_id)
            if whom:
                message = Message("Only an administrator of your License Desk account can do this. Ask {whom}.",
                                  whom=whom)
            else:
                message = Message("Only an administrator of your License Desk account can do this. Ask one of them.")
            raise NotAdmin(message, **admins)
        return caller

    def _whom_to_ask(self, s: Session, account_id: int) -> tuple[str | None, dict]:
        """Up to three administrators of the account, by name ("A, B or C", a Message), for a
        refusal to say whom to ask (refusal paths only: one query), and the error details naming
        them (``admins``, and ``more_admins`` when there are others). (None, {...}) when it has none."""
        names = [n[:80] for n in s.scalars(select(User.name).where(User.account_id == account_id,
                                                                   User.role == "admin")
                                           .order_by(User.sort_key, User.id).limit(4))]
        shown = names[:3]
        details = {"admins": shown, "more_admins": len(names) > 3}
        if not shown:
            return None, details
        if len(names) > 3:
            return Message("{a}, {b}, {c} or another administrator", a=shown[0], b=shown[1], c=shown[2]), details
        if len(shown) == 3:
            return Message("{a}, {b} or {c}", a=shown[0], b=shown[1], c=shown[2]), details
        if len(shown) == 2:
            return Message("{a} or {b}", a=shown[0], b=shown[1]), details
        return shown[0], details

    def _audit(self, s: Session, *, account_id: int | None, tenant_id: str | None, actor_id: int | None,
               actor: str | None, action: str, outcome: str = "ok", target: str | None = None,
               message: str | None = None, detail: dict | None = None) -> None:
        if isinstance(message, Message):  # its template and params too: said in the reader's language later
            detail = {**(detail or {}), "message": message.to_json()}
        s.add(AuditEvent(account_id=account_id, tenant_id=tenant_id, actor_id=actor_id, actor=actor,
                         action=action, outcome=outcome, target=target,
                         message=None if message is None else str(message),  # (the English text: a plain str)
                         detail=detail or {}, created_at=self.now()))

    def _audit_ok(self, s: Session, caller: CallerView | None, action: str, target: str | None = None,
                  detail: dict | None = None, account_id: int | None = None) -> None:
        self._audit(s, account_id=caller.account_id if caller else account_id,
                    tenant_id=caller.tenant_id if caller else None, actor_id=caller.user_id if caller else None,
                    actor=caller.name if caller else SYSTEM, action=action, target=target, detail=detail)

    def _refused(self, actor: Actor | None, action: str, error: DomainError, target: str | None) -> None:
        """Audit a refused attempt in its own transaction (the refused one was rolled back)."""

        def work(s: Session):
            account_id = user_id = None
            name = actor.aad_object_id if actor else SYSTEM
            tenant = actor.tenant_id.lower() if actor and actor.tenant_id else None
            if actor and actor.tenant_id:
                account_id = s.scalar(select(AccountTenant.account_id).where(AccountTenant.tenant_id == tenant))
                if account_id and actor.aad_object_id:
                    u = s.execute(select(User.id, User.name).where(
                        User.account_id == account_id, User.aad_object_id == actor.aad_object_id)).first()
                    if u:
                        user_id, name = u
            self._audit(s, account_id=account_id, tenant_id=tenant, actor_id=user_id, actor=(name or "")[:320],
                        action=action, outcome="refused", target=(target or "")[:200] or None,
                        message=error.message, detail={"code": error.code})

        try:
            self.db.write(work)
        except Exception:  # the refusal itself must reach the person even if auditing fails
            log.exception("could not audit a refused %s", action)

    def _command(self, actor: Actor, action: str, fn, *, admin: bool = True, target=None):
        try:
            return self.db.write(lambda s: fn(s, self._caller(s, actor, admin=admin)))
        except DomainError as e:
            self._refused(actor, action, e, None if target is None else str(target))
            raise

    def _query(self, actor: Actor, action: str, fn, *, admin: bool = True, target=None):
        try:
            with self.db.read() as s:
                return fn(s, self._caller(s, actor, admin=admin))
        except DomainError as e:
            self._refused(actor, action, e, None if target is None else str(target))
            raise

    def _outbox(self, s: Session, *, account_id: int, channel: str, kind: str, dedupe_key: str,
                payload: dict, user_id: int | None = None) -> None:
        """Queue a message, once per dedupe key (a replayed change queues nothing new)."""
        if s.scalar(select(OutboxMessage.id).where(OutboxMessage.dedupe_key == dedupe_key)) is not None:
            return
        s.add(OutboxMessage(account_id=account_id, channel=channel, kind=kind, user_id=user_id, payload=payload,
                            dedupe_key=dedupe_key, status="pending", attempts=0, available_at=self.now(),
                            created_at=self.now()))

    # ------------------------------------------------------------------ catalog helpers

    def plan_view(self, plan: Plan) -> PlanView:
        return PlanView(code=plan.code, name=plan.name, family=plan.family,
                        family_name=self.catalog.families[plan.family], rank=plan.rank, currency=plan.currency,
                        month=plan.prices["month"], year=plan.prices["year"])

    def plans(self) -> list[PlanView]:
        return [self.plan_view(p) for p in self.catalog.all_plans()]

    def _plan_name(self, code: str | None) -> str | None:
        if code is None:
            return None
        plan = self.catalog.plans.get(code)
        return plan.name if plan else code

    # ------------------------------------------------------------------ discounts and periods

    def _discount_at(self, s: Session, account_id: int, t: datetime) -> Discount | None:
        return s.scalars(_DISCOUNT_AT, {"account": account_id, "at": t, "after": t}).first()

    def _rate_at(self, s: Session, account_id: int, t: datetime) -> Fraction:
        d = self._discount_at(s, account_id, t)
        return _as_fraction(d.percent_off if d else None)

    def _current(self, s: Session, sub: Subscription, now: datetime) -> Subscription:
        """The subscription with its period rolled over up to ``now`` (applying what was scheduled)."""
        while sub.period_end <= now:
            self._roll_one_period(s, sub)
        return sub

    def _roll_one_period(self, s: Session, sub: Subscription) -> None:
        boundary = sub.period_end
        pools = s.scalars(select(Pool).where(Pool.subscription_id == sub.id).with_for_update()).all()
        by_plan = {p.plan_code: p for p in pools}
        for pool in pools:
            if pool.removal_scheduled:
                self._audit_ok(s, None, "seats.removed", f"pool:{pool.id}",
                               {"quantity": pool.removal_scheduled, "plan": pool.plan_code},
                               account_id=sub.account_id)
                pool.quantity -= pool.removal_scheduled
                pool.removal_scheduled = 0
        moving = s.execute(
            select(Seat, Pool.plan_code).join(Pool, Pool.id == Seat.pool_id)
            .where(Pool.subscription_id == sub.id, Seat.downgrade_to.is_not(None))
        ).all()
        for seat, from_code in moving:
            target = by_plan.get(seat.downgrade_to)
            if target is None:
                target = by_plan[seat.downgrade_to] = self._get_or_create_pool(s, sub, seat.downgrade_to,
                                                                              created_at=boundary)
            source = by_plan[from_code]
            source.quantity -= 1
            target.quantity += 1
            seat.pool_id = target.id
            seat.plan_since = boundary
            to_code = seat.downgrade_to
            seat.downgrade_to = None
            self._outbox(s, account_id=sub.account_id, channel="chat", kind="downgrade_applied",
                         user_id=seat.user_id, dedupe_key=f"downgrade:{seat.id}:{boundary.isoformat()}",
                         payload={"from_plan": from_code, "to_plan": to_code, "effective": boundary.isoformat()})
            self._audit_ok(s, None, "seat.downgraded", f"user:{seat.user_id}",
                           {"from": from_code, "to": to_code}, account_id=sub.account_id)
        sub.period_number += 1
        sub.period_start, sub.period_end = period_bounds(sub.anchor_at, sub.interval, sub.period_number)
        s.flush()
        self._audit_ok(s, None, "period.rolled_over", f"subscription:{sub.id}",
                       {"interval": sub.interval, "start": sub.period_start.isoformat(),
                        "end": sub.period_end.isoformat()}, account_id=sub.account_id)
        self._queue_billing_sync(s, sub, f"rollover:{sub.id}:{sub.period_number}")

    def roll_over(self) -> int:
        """The period roll-over job: start the next period of every subscription whose period
        ended, applying scheduled removals and downgrades. Returns how many periods rolled."""
        now = self.now()

        def work(s: Session) -> int:
            n = 0
            for sub in s.scalars(select(Subscription).where(Subscription.period_end <= now).with_for_update()):
                while sub.period_end <= now:
                    self._roll_one_period(s, sub)
                    n += 1
            return n

        return self.db.write(work)

    def _queue_billing_sync(self, s: Session, sub: Subscription, key: str) -> None:
        """After a change that alters what the provider must bill at the next renewal, queue a sync
        of the linked subscription. The desired items are read when the sync is delivered, not
        now, so that syncs delivered late or out of order still leave the latest state."""
        if not sub.external_ref:
            return
        self._outbox(s, account_id=sub.account_id, channel="billing", kind="sync_subscription",
                     dedupe_key=f"billing:{key}:{uuid.uuid4().hex[:12]}", payload={"subscription_id": sub.id})

    def _renewal_items(self, s: Session, sub: Subscription) -> list[SubscriptionItemChange]:
        """What the subscription bills from its next renewal: bought seats less scheduled removals,
        with scheduled downgrades counted in their new plan."""
        account = s.get(Account, sub.account_id)
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
                                       unit_amount=self.catalog.plan(code).price(sub.interval),
                                       currency=account.currency)
                for code, n in sorted(qty.items()) if n > 0]

    # ------------------------------------------------------------------ who am I

    def whoami(self, actor: Actor) -> CallerView:
        return self._query(actor, "whoami", lambda s, c: c, admin=False)

    def require_admin(self, actor: Actor, action: str = "admin") -> CallerView:
        return self._query(actor, action, lambda s, c: c, admin=True)

    # ------------------------------------------------------------------ pools

    def _pool(self, s: Session, caller: CallerView, pool_id, *, lock: bool = False) -> Pool:
        pid = parse_id(pool_id, "pool")
        pool = s.scalars(_POOL_LOCKED if lock else _POOL, {"pool": pid, "account": caller.account_id}).first()
        if pool is None:
            raise NotFound(NO_SUCH_POOL)
        return pool

    def _pool_and_subscription(self, s: Session, caller: CallerView, pool_id) -> tuple[Pool, Subscription]:
        """:meth:`_pool` and its subscription, in one query (the read paths)."""
        pid = parse_id(pool_id, "pool")
        row = s.execute(_POOL_AND_SUBSCRIPTION, {"pool": pid, "account": caller.account_id}).first()
        if row is None:
            raise NotFound(NO_SUCH_POOL)
        return row[0], row[1]

    def _pool_view(self, s: Session, pool: Pool, sub: Subscription, currency: str) -> PoolView:
        return self._pool_views(s, [(pool, sub)], currency)[0]

    def _pool_views(self, s: Session, rows: list[tuple[Pool, Subscription]], currency: str) -> list[PoolView]:
        """Views of several pools in a few grouped queries (not a few queries per pool)."""
        if not rows:
            return []
        ids = [p.id for p, _ in rows]
        assigned = dict(s.execute(_ASSIGNED, {"pools": ids}).all())
        moves = s.execute(_DOWNGRADES, {"subscriptions": sorted({sub.id for _, sub in rows})}).all()
        down_out: dict[int, int] = {}
        down_in: dict[tuple[int, str], int] = {}
        for sub_id, pool_id, to_code, n in moves:
            down_out[pool_id] = down_out.get(pool_id, 0) + n
            down_in[(sub_id, to_code)] = down_in.get((sub_id, to_code), 0) + n
        rates: dict[int, Fraction] = {}
        views = []
        for pool, sub in rows:
            plan = self.catalog.plan(pool.plan_code)
            if sub.id not in rates:
                rates[sub.id] = self._rate_at(s, pool.account_id, sub.period_end)
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

    def _list_pools(self, s: Session, caller: CallerView) -> list[PoolView]:
        rows = s.execute(_ACCOUNT_POOLS, {"account": caller.account_id}).all()
        views = self._pool_views(s, [(p, sub) for p, sub in rows if p.quantity > 0 or p.removal_scheduled],
                                 caller.currency)
        order = list(self.catalog.families)
        return sorted(views, key=lambda v: (order.index(v.family), v.rank, INTERVALS.index(v.interval)))

    def list_pools(self, actor: Actor) -> list[PoolView]:
        return self._query(actor, "pools.list", self._list_pools)

    def pools_overview(self, actor: Actor) -> tuple[CallerView, list[PoolView]]:
        """The caller (an administrator) and the account's pools, read together (one transaction:
        ``require_admin`` then ``list_pools`` read the caller twice)."""
        return self._query(actor, "pools.list", lambda s, caller: (caller, self._list_pools(s, caller)))

    def pool(self, actor: Actor, pool_id) -> PoolView:
        def fn(s: Session, caller: CallerView):
            pool, sub = self._pool_and_subscription(s, caller, pool_id)
            return self._pool_view(s, pool, sub, caller.currency)

        return self._query(actor, "pool.view", fn, target=f"pool:{pool_id}")

    def _term_filter(self, account_id: int, query: str, user_col):
        """SQL conditions: every word of ``query`` is a prefix of one of the user's terms
        (index range on user_terms, no scan in Python)."""
        conds = []
        for w in words(query)[:5]:
            hi = w[:-1] + chr(ord(w[-1]) + 1)
            conds.append(exists().where(UserTerm.user_id == user_col, UserTerm.account_id == account_id,
                                        UserTerm.term >= w, UserTerm.term < hi))
        return conds

    def _page_args(self, page, page_size) -> tuple[int, int]:
        try:
            page = max(0, int(page or 0))
            page_size = min(MAX_PAGE_SIZE, max(1, int(page_size or PAGE_SIZE)))
        except (TypeError, ValueError):
            raise InvalidInput(Message("That page number is not valid.")) from None
        return min(page, 10**6), page_size

    def _pool_users(self, s: Session, caller: CallerView, pool: Pool, query, page, page_size, *,
                    clamp: bool = False, assigned: int | None = None) -> Page:
        """``assigned``: the pool's seat count, read in this transaction already (the total when
        there is no search)."""
        q = clean_text(query, max_length=100, field="search text") or ""
        pg, size = self._page_args(page, page_size)
        terms = self._term_filter(caller.account_id, q, Seat.user_id)
        count_q, page_q = _pool_users_statements(*terms) if terms else _POOL_USERS
        total = assigned if assigned is not None and not terms else s.scalar(count_q, {"pool": pool.id}) or 0
        if clamp and pg and pg * size >= total:  # past the end (the pool shrank): the last page
            pg = max(0, -(-total // size) - 1)
        rows = s.execute(page_q, {"pool": pool.id, "now": self.now(), "limit": size, "offset": pg * size}).all()
        items = [UserRow(id=r[0], name=r[1], email=r[2], plan_code=pool.plan_code, downgrade_to=r[3],
                         held_until=r[4], downgrade_to_name=self._plan_name(r[3])) for r in rows]
        return Page(items=items, total=total, page=pg, page_size=size, query=q)

    def pool_users(self, actor: Actor, pool_id, *, query: str | None = None, page=0,
                   page_size=PAGE_SIZE) -> Page:
        """The users holding a seat of a pool, by name, paged and searchable by name or e-mail."""
        return self._query(actor, "pool.users",
                           lambda s, c: self._pool_users(s, c, self._pool(s, c, pool_id), query, page, page_size),
                           target=f"pool:{pool_id}")

    def pool_page(self, actor: Actor, pool_id, *, query: str | None = None, page=0,
                  page_size=PAGE_SIZE) -> tuple[PoolView, Page]:
        """A pool and a page of its users, read together (one transaction: one consistent view); a
        page past the end (the pool shrank since the card was shown) gives the last page."""

        def fn(s: Session, caller: CallerView):
            pool, sub = self._pool_and_subscription(s, caller, pool_id)
            view = self._pool_view(s, pool, sub, caller.currency)
            return view, self._pool_users(s, caller, pool, query, page, page_size, clamp=True, assigned=view.assigned)

        return self._query(actor, "pool.users", fn, target=f"pool:{pool_id}")

    def directory(self, actor: Actor, *, query: str | None = None, page=0, page_size=PAGE_SIZE) -> Page:
        """The account's users, searchable; each with the plans they hold."""

        def fn(s: Session, caller: CallerView):
            q = clean_text(query, max_length=100, field="search text") or ""
            pg, size = self._page_args(page, page_size)
            conds = [User.account_id == caller.account_id, *self._term_filter(caller.account_id, q, User.id)]
            total = s.scalar(select(func.count()).select_from(User).where(*conds)) or 0
            users = s.execute(select(User.id, User.name, User.email).where(*conds)
                              .order_by(User.sort_key, User.id).limit(size).offset(pg * size)).all()
            held: dict[int, list[str]] = {}
            if users:
                for uid, code in s.execute(select(Seat.user_id, Pool.plan_code).join(Pool, Pool.id == Seat.pool_id)
                                           .where(Seat.user_id.in_([u[0] for u in users]))):
                    held.setdefault(uid, []).append(code)
            items = [UserRow(id=u[0], name=u[1], email=u[2], plan_code=",".join(sorted(held.get(u[0], []))) or None)
                     for u in users]
            return Page(items=items, total=total, page=pg, page_size=size, query=q)

        return self._query(actor, "directory.search", fn)

    def _held_codes(self, s: Session, user_ids: list[int]) -> dict[int, str]:
        held: dict[int, list[str]] = {}
        for uid, code in s.execute(select(Seat.user_id, Pool.plan_code).join(Pool, Pool.id == Seat.pool_id)
                                   .where(Seat.user_id.in_(user_ids))):
            held.setdefault(uid, []).append(code)
        return {uid: ",".join(sorted(codes)) for uid, codes in held.items()}

    def directory_user(self, actor: Actor, user_id) -> UserRow:
        """One user of the caller's account with the plans they hold (``plan_code``: a comma
        list, as in :meth:`directory`); NotFound for anyone else."""

        def fn(s: Session, caller: CallerView):
            user = self._user(s, caller, user_id)
            return UserRow(user.id, user.name, user.email, plan_code=self._held_codes(s, [user.id]).get(user.id))

        return self._query(actor, "directory.user", fn, target=f"user:{user_id}")

    def users_by_aad(self, actor: Actor, aad_object_ids) -> dict[str, UserRow]:
        """Which of these Azure AD object ids (e.g. people found in the tenant's directory) are
        users of the caller's account already, with the plans they hold."""

        def fn(s: Session, caller: CallerView):
            ids = [a for a in aad_object_ids if isinstance(a, str) and 0 < len(a) <= 64][:MAX_PAGE_SIZE]
            if not ids:
                return {}
            rows = s.execute(select(User.aad_object_id, User.id, User.name, User.email)
                             .where(User.account_id == caller.account_id, User.aad_object_id.in_(ids))).all()
            held = self._held_codes(s, [r[1] for r in rows]) if rows else {}
            return {r[0]: UserRow(r[1], r[2], r[3], plan_code=held.get(r[1])) for r in rows}

        return self._query(actor, "directory.lookup", fn)

    def _seats_of(self, s: Session, pool: Pool, user_ids: list[int], *, lock: bool = False) -> list[Seat]:
        seats = list(s.scalars(_SEATS_OF[lock], {"pool": pool.id, "users": list(user_ids)}))
        if len(seats) != len(user_ids):
            missing = len(user_ids) - len(seats)
            raise InvalidInput(no_longer_held(missing), stale=True)
        return seats

    def upgrade_options(self, actor: Actor, pool_id, user_ids) -> list[PlanView]:
        """Only plans of the pool's family ranked higher than every selected user's plan."""

        def fn(s: Session, caller: CallerView):
            pool = self._pool(s, caller, pool_id)
            self._seats_of(s, pool, parse_ids(user_ids))
            plan = self.catalog.plan(pool.plan_code)
            return [self.plan_view(p) for p in self.catalog.higher_plans(plan) if p.currency == caller.currency]

        return self._query(actor, "upgrade.options", fn, target=f"pool:{pool_id}")

    def downgrade_options(self, actor: Actor, pool_id) -> list[PlanView]:
        def fn(s: Session, caller: CallerView):
            plan = self.catalog.plan(self._pool(s, caller, pool_id).plan_code)
            return [self.plan_view(p) for p in self.catalog.lower_plans(plan) if p.currency == caller.currency]

        return self._query(actor, "downgrade.options", fn, target=f"pool:{pool_id}")

    # ------------------------------------------------------------------ quotes

    def _check_not_held(self, s: Session, seat_ids: list[int], now: datetime, *, except_quote: str | None = None,
                        by: int | None = None):
        """Refuse seats held by an open quote; ``by``: the caller's user id (their own quote is
        said to be theirs, to open or cancel, not someone to ask)."""
        if not seat_ids:
            return
        for chunk in _chunks(seat_ids):
            params = {"seats": chunk, "now": now, **({"quote": except_quote} if except_quote else {})}
            row = s.execute(_HELD[bool(except_quote)], params).first()
            if row:
                raise HeldByQuote(row[0], row[1], row[2], mine=by is not None and row[3] == by)

    def _hold(self, s: Session, quote: Quote, seat_ids: list[int], now: datetime) -> None:
        self._check_not_held(s, seat_ids, now, by=quote.created_by)
        for chunk in _chunks(seat_ids):
            s.execute(delete(QuoteHold).where(QuoteHold.seat_id.in_(chunk)))  # stale holds only (checked above)
        try:
            with s.begin_nested():
                s.add_all(QuoteHold(seat_id=sid, quote_id=quote.id, expires_at=quote.expires_at) for sid in seat_ids)
                s.flush()
        except IntegrityError:  # another transaction held them first (PostgreSQL, concurrent quotes)
            self._check_not_held(s, seat_ids, now, by=quote.created_by)
            raise HeldByQuote(None, now + self.quote_ttl, "") from None

    def _new_quote(self, caller: CallerView, kind: str, now: datetime, expires_at: datetime, **kw) -> Quote:
        return Quote(id=uuid.uuid4().hex, account_id=caller.account_id, kind=kind, status="open",
                     created_by=caller.user_id, created_at=now, priced_at=now, expires_at=expires_at,
                     currency=caller.currency, **kw)

    def _minimum_charge(self, currency: str) -> int:
        """The smallest amount the payment provider collects through a link (1: any amount)."""
        return self.gateway.minimum_charge(currency) if self.gateway is not None else 1

    def _carry_split(self, s: Session, caller: CallerView, owed: int) -> tuple[int, int]:
        """(due now, carried) for an amount owed now. Below the provider's minimum charge it cannot
        be paid by card: it is carried to the account's next invoice instead (as billing providers
        do with an invoice under their minimum), where the account has a customer at the provider; else it
        stays due now, and the payment link says why it cannot be made."""
        if not 0 < owed < self._minimum_charge(caller.currency):
            return owed, 0
        if not s.scalar(select(Account.billing_ref).where(Account.id == caller.account_id)):
            return owed, 0
        return 0, owed

    def _price_upgrade(self, s: Session, caller: CallerView, pool: Pool, user_ids: list[int], to_plan,
                       now: datetime):
        sub = self._current(s, s.get(Subscription, pool.subscription_id), now)  # before reading the seats
        seats = self._seats_of(s, pool, user_ids)
        plan_a = self.catalog.plan(pool.plan_code)
        if not isinstance(to_plan, str) or not to_plan:
            raise InvalidInput(Message("Choose the plan to upgrade to."))
        plan_b = self.catalog.plan(to_plan)
        if plan_b.family != plan_a.family:
            raise WrongFamily(Message("{plan} is not in the same family as {current}; an upgrade stays within the "
                                      "{family} family.", plan=plan_b.name, current=plan_a.name,
                                      family=self.catalog.families[plan_a.family]))
        if plan_b.rank <= plan_a.rank:
            raise NotAnUpgrade(Message("{plan} is not above {current}: an upgrade must go to a higher tier.",
                                       plan=plan_b.name, current=plan_a.name))
        plan_b = self.catalog.priced_plan(plan_b.code, sub.interval, caller.currency)
        f = pricing.remaining_fraction(sub.period_start, sub.period_end, now)
        disc = self._discount_at(s, caller.account_id, now)
        d = _as_fraction(disc.percent_off if disc else None)
        d_next = self._rate_at(s, caller.account_id, sub.period_end)
        n = len(seats)
        lines = pricing.upgrade_lines(n, plan_a.code, plan_a.price(sub.interval), plan_b.code,
                                      plan_b.price(sub.interval), sub.interval, f, d)
        renewal = pricing.renewal_amount(n, plan_b.price(sub.interval), d_next)
        line_dicts = [dict(line.to_dict(), period_start=sub.period_start.isoformat(),
                           period_end=sub.period_end.isoformat(), new_period=False,
                           renewal_amount=renewal if line.kind == "charge" else 0) for line in lines]
        return seats, sub, plan_a, plan_b, lines, line_dicts, renewal, disc

    def quote_upgrade(self, actor: Actor, pool_id, user_ids, to_plan, *, request_id: int | None = None,
                      quote_id: str | None = None) -> QuoteView:
        """Price moving the selected users of one pool to a higher plan, and hold their seats.
        ``quote_id`` (chosen when the tiers card was shown) makes it idempotent, as for
        :meth:`quote_purchase`: a double click gets the quote the first click created."""

        def fn(s: Session, caller: CallerView):
            return self._quote_upgrade(s, caller, pool_id, parse_ids(user_ids), to_plan, request_id, quote_id)

        try:
            return self._command(actor, "quote.upgrade", fn, target=f"pool:{pool_id}")
        except IntegrityError:  # a concurrent click with the same key created the quote first
            if quote_id is None:
                raise
            return self.quote(actor, quote_id)

    def _keyed_quote(self, s: Session, caller: CallerView, quote_id: str | None, kind: str) -> QuoteView | None:
        """The quote already created with a client-chosen key (32 hex digits), if any."""
        if quote_id is None:
            return None
        if not isinstance(quote_id, str) or len(quote_id) != 32 or quote_id.strip("0123456789abcdef"):
            if kind == "upgrade":
                raise InvalidInput(Message("This card is not valid. Start again from the license pools."))
            raise InvalidInput(Message("This cart card is not valid. Start again from “buy”."))
        existing = s.get(Quote, quote_id)
        if existing is None:
            return None
        if existing.account_id != caller.account_id or existing.kind != kind:
            raise NotFound(Message("That quote does not exist in your account."))
        return self._quote_view(s, existing)

    def _quote_upgrade(self, s: Session, caller: CallerView, pool_id, user_ids: list[int], to_plan,
                       request_id: int | None, quote_id: str | None = None) -> QuoteView:
        now = self.now()
        pool = self._pool(s, caller, pool_id, lock=True)
        existing = self._keyed_quote(s, caller, quote_id, "upgrade")  # (read under the pool's lock)
        if existing is not None:
            return existing
        seats, sub, plan_a, plan_b, lines, line_dicts, renewal, disc = self._price_upgrade(
            s, caller, pool, user_ids, to_plan, now)
        totals = pricing.totals(lines)
        due_now, carried = self._carry_split(s, caller, totals.due_now)
        quote = self._new_quote(
            caller, "upgrade", now, min(now + self.quote_ttl, sub.period_end), pool_id=pool.id,
            from_plan=plan_a.code, to_plan=plan_b.code, user_ids=[seat.user_id for seat in seats],
            lines=line_dicts, discount_label=disc.label if disc else None,
            discount_percent=disc.percent_off if disc else None, gross=totals.gross, discount=totals.discount,
            due_now=due_now, carried=carried, renewal_amount=renewal, renewal_date=sub.period_end,
            request_id=request_id)
        if quote_id:
            quote.id = quote_id
        s.add(quote)
        s.flush()
        self._hold(s, quote, [seat.id for seat in seats], now)
        self._audit_ok(s, caller, "quote.upgrade", f"quote:{quote.id}",
                       {"pool": pool.id, "users": len(seats), "from": plan_a.code, "to": plan_b.code,
                        "due_now": due_now, "carried": carried, "renewal": renewal})
        return self._quote_view(s, quote)

    def quote_purchase(self, actor: Actor, lines, *, quote_id: str | None = None) -> QuoteView:
        """Price a cart: ``lines`` is a list of {plan, interval, quantity}. ``quote_id`` (32 hex
        digits, chosen when the cart was shown) makes a checkout idempotent: a repeated one
        (double click, replay) returns the quote created with that id instead of a second quote."""

        def fn(s: Session, caller: CallerView):
            existing = self._keyed_quote(s, caller, quote_id, "purchase")
            if existing is not None:
                return existing
            return self._quote_purchase(s, caller, lines, quote_id=quote_id)

        try:
            return self._command(actor, "quote.purchase", fn)
        except IntegrityError:  # a concurrent checkout of the same cart created the quote first
            if quote_id is None:
                raise
            return self.quote(actor, quote_id)

    def _parse_cart(self, caller: CallerView, lines) -> list[tuple[Plan, str, int]]:
        if not isinstance(lines, list | tuple) or not lines:
            raise InvalidInput(Message("The cart is empty: add at least one line."))
        if len(lines) > MAX_CART_LINES:
            raise InvalidInput(Message("A cart holds at most {n} lines.", n=MAX_CART_LINES))
        merged: dict[tuple[str, str], int] = {}
        for line in lines:
            if not isinstance(line, dict):
                raise InvalidInput(Message("A cart line is not valid."))
            interval = line.get("interval")
            if interval not in INTERVALS:
                raise InvalidInput(Message("Choose monthly or yearly billing for each line."))
            code = line.get("plan")
            if not isinstance(code, str):
                raise InvalidInput(Message("Choose a plan for each line."))
            plan = self.catalog.priced_plan(code, interval, caller.currency)
            qty = parse_quantity(line.get("quantity"))
            merged[(plan.code, interval)] = parse_quantity(merged.get((plan.code, interval), 0) + qty)
        return [(self.catalog.plan(code), interval, qty) for (code, interval), qty in merged.items()]

    def cart_preview(self, actor: Actor, lines) -> QuoteView:
        """Price a cart without creating a quote (the cart card shows it before checkout)."""

        def fn(s: Session, caller: CallerView):
            return self._quote_purchase(s, caller, lines, persist=False)

        return self._query(actor, "cart.preview", fn)

    def _quote_purchase(self, s: Session, caller: CallerView, lines, *, persist: bool = True,
                        quote_id: str | None = None) -> QuoteView:
        now = self.now()
        cart = self._parse_cart(caller, lines)
        d = self._discount_at(s, caller.account_id, now)
        rate = _as_fraction(d.percent_off if d else None)
        priced, line_dicts = [], []
        renewal_total, renewal_date, expires = 0, None, now + self.quote_ttl
        for plan, interval, qty in cart:
            sub = s.scalars(select(Subscription).where(Subscription.account_id == caller.account_id,
                                                       Subscription.interval == interval)).first()
            if sub is not None:
                if persist:
                    sub = self._current(s, sub, now)
                    start, end = sub.period_start, sub.period_end
                else:  # a preview reads the period the roll-over would reach, without writing it
                    _, start, end = period_containing(sub.anchor_at, sub.interval, now)
                new = False
                f = pricing.remaining_fraction(start, end, now)
                expires = min(expires, end)
            else:
                start, end, new = now, add_intervals(now, interval, 1), True
                f = Fraction(1)
            line = pricing.purchase_line(qty, plan.code, plan.price(interval), interval, f, rate)
            renewal = pricing.renewal_amount(qty, plan.price(interval), self._rate_at(s, caller.account_id, end))
            priced.append(line)
            line_dicts.append(dict(line.to_dict(), period_start=start.isoformat(), period_end=end.isoformat(),
                                   new_period=new, renewal_amount=renewal))
            if renewal_date is None or end < renewal_date:  # the quote's renewal: the next one, and only its lines
                renewal_total, renewal_date = renewal, end
            elif end == renewal_date:
                renewal_total += renewal
        totals = pricing.totals(priced)
        due_now, carried = self._carry_split(s, caller, totals.due_now)
        quote = self._new_quote(caller, "purchase", now, expires, lines=line_dicts, user_ids=[],
                                discount_label=d.label if d else None, discount_percent=d.percent_off if d else None,
                                gross=totals.gross, discount=totals.discount, due_now=due_now, carried=carried,
                                renewal_amount=renewal_total, renewal_date=renewal_date)
        if quote_id:
            quote.id = quote_id
        if persist:
            s.add(quote)
            s.flush()
            self._audit_ok(s, caller, "quote.purchase", f"quote:{quote.id}",
                           {"lines": [[p.code, i, q] for p, i, q in cart], "due_now": due_now, "carried": carried})
        return self._quote_view(s, quote)

    def _load_quote(self, s: Session, caller: CallerView | None, quote_id, *, lock: bool = False) -> Quote:
        if not isinstance(quote_id, str) or not 1 <= len(quote_id) <= 32:
            raise NotFound(Message("That quote does not exist."))
        params = {"quote": quote_id} if caller is None else {"quote": quote_id, "account": caller.account_id}
        quote = s.scalars(_QUOTE[(caller is not None, lock)], params).first()
        if quote is None:
            raise NotFound(Message("That quote does not exist in your account."))
        return quote

    def _effective_status(self, quote: Quote) -> str:
        if quote.status == "open" and quote.expires_at <= self.now():
            return "expired"
        return quote.status

    def _quote_view(self, s: Session, quote: Quote) -> QuoteView:
        users: list[UserRow] = []
        if quote.user_ids:
            found = {}
            for chunk in _chunks(quote.user_ids):
                for r in s.execute(_USER_ROWS, {"users": chunk}):
                    found[r[0]] = r
            users = [UserRow(id=uid, name=found[uid][1], email=found[uid][2], plan_code=quote.from_plan)
                     for uid in quote.user_ids if uid in found]
            users.sort(key=lambda u: (fold(u.name), u.id))
        payment = s.scalars(_QUOTE_PAYMENT, {"quote": quote.id}).first() if quote.id else None
        creator = s.execute(_USER_NAME, {"user": quote.created_by}).first()  # (only the name: not the whole user)
        lines = [QuoteLineView(
            kind=ln["kind"], plan_code=ln["plan_code"], plan_name=self._plan_name(ln["plan_code"]),
            interval=ln["interval"], quantity=ln["quantity"], unit_price=ln["unit_price"], fraction=ln["fraction"],
            gross=ln["gross"], amount=ln["amount"], period_start=datetime.fromisoformat(ln["period_start"]),
            period_end=datetime.fromisoformat(ln["period_end"]), renewal_amount=ln["renewal_amount"],
            new_period=ln["new_period"]) for ln in quote.lines]
        interval = lines[0].interval if quote.kind == "upgrade" and lines else None
        receipt = {}
        if quote.status == "paid":
            notices = s.execute(select(OutboxMessage.status, func.count()).where(
                OutboxMessage.account_id == quote.account_id, OutboxMessage.kind == "license_upgraded",
                OutboxMessage.dedupe_key.like(f"quote:{quote.id}:user:%")).group_by(OutboxMessage.status)).all()
            receipt = dict(paid_at=quote.closed_at, paid_amount=payment.amount if payment else quote.due_now,
                           paid_by=payment.payer_email if payment else None,  # (when the provider told it)
                           payment_reference=(None if payment is None else f"{quote.id[:8]}-{payment.id}"
                                              if payment.provider == "sandbox" else payment.external_id),
                           notices_total=sum(n for _, n in notices),
                           notices_delivered=sum(n for status, n in notices if status == "sent"),
                           notices_unreachable=sum(n for status, n in notices if status in ("unreachable", "failed")))
        renewals: dict[datetime, int] = {}  # each line's period end -> what renews then
        for ln in lines:
            renewals[ln.period_end] = renewals.get(ln.period_end, 0) + ln.renewal_amount
        return QuoteView(
            id=quote.id, kind=quote.kind, status=self._effective_status(quote), account_id=quote.account_id,
            currency=quote.currency, created_by=quote.created_by, created_by_name=creator[0] if creator else "",
            created_at=quote.created_at, priced_at=quote.priced_at, expires_at=quote.expires_at,
            pool_id=quote.pool_id, from_plan=quote.from_plan, from_plan_name=self._plan_name(quote.from_plan),
            to_plan=quote.to_plan, to_plan_name=self._plan_name(quote.to_plan), interval=interval, users=users,
            lines=lines, gross=quote.gross, discount=quote.discount, discount_label=quote.discount_label,
            discount_percent=quote.discount_percent, due_now=quote.due_now, renewal_amount=quote.renewal_amount,
            renewal_date=quote.renewal_date, payment_url=payment.url if payment else None,
            payment_provider=payment.provider if payment else None, closed_at=quote.closed_at, note=quote.note,
            request_id=quote.request_id, carried=quote.carried or 0, payment_lapsed=quote.payment_lapsed,
            payment_status=payment.status if payment else None,
            renewals=tuple(RenewalView(date, amount) for date, amount in sorted(renewals.items())), **receipt)

    def quote(self, actor: Actor, quote_id) -> QuoteView:
        return self._query(actor, "quote.view", lambda s, c: self._quote_view(s, self._load_quote(s, c, quote_id)),
                           target=f"quote:{quote_id}")

    def _require_open(self, quote: Quote) -> None:
        status = self._effective_status(quote)
        if status == "open":
            return
        raise QuoteNotOpen(QUOTE_NOT_OPEN.get(status) or Message("This quote can no longer be used."), status=status)

    def payment_link(self, actor: Actor, quote_id, *, posted_card: tuple[str, dict] | None = None) -> QuoteView:
        """The quote's payment link, created once (a quote yields at most one link).

        ``posted_card`` (message ref, address): the message showing the quote, remembered as
        :meth:`record_posted_card` does, in the transaction that stores the link (or on its own
        when the link existed already); not remembered when this raises."""
        view, remembered = self._payment_link(actor, quote_id, posted_card)
        if posted_card is not None and not remembered:
            self.record_posted_card(view.account_id, "quote", view.id, *posted_card)
        return view

    def _payment_link(self, actor: Actor, quote_id, posted_card: tuple[str, dict] | None) -> tuple[QuoteView, bool]:
        """(the quote with its link, whether ``posted_card`` was remembered with the link)."""
        target = f"quote:{quote_id}"
        try:
            with self.db.read() as s:
                caller = self._caller(s, actor, admin=True)
                quote = self._load_quote(s, caller, quote_id)
                self._require_open(quote)
                if quote.due_now <= 0:
                    raise InvalidInput(Message("Nothing is due on this quote: confirm it instead of paying."))
                existing = s.scalars(_QUOTE_PAYMENT, {"quote": quote.id}).first()
                if existing:
                    view = self._quote_view(s, quote)
                else:
                    account = s.get(Account, caller.account_id)
                    request = self._payment_request(s, quote, account)
            if existing:
                return view, False
            if self.gateway is None:
                raise PaymentUnavailable(Message("Payments are not configured on this server. Ask your administrator."))
            if request.amount < self._minimum_charge(request.currency):
                raise PaymentUnavailable(Message(
                    "The amount due now is below the smallest card payment the payment service accepts, and "
                    "this account has no billing profile there to add it to the next invoice. Include more "
                    "users or licenses in this change."))
            try:
                link = self.gateway.create_link(request)
            except PaymentProviderError as e:
                log.warning("payment provider failed for quote %s: %s", quote.id, e)
                if e.answered:  # the provider keeps that answer for the key: the next attempt gets a new one
                    self._next_attempt(quote.id, Quote.link_attempt, quote.link_attempt)
                if e.permanent:
                    raise PaymentRefused(PAYMENT_REFUSED.get(e.reason or "", PAYMENT_REFUSED["request"])) from None
                raise PaymentUnavailable(PAYMENT_FAILED_NOW if e.answered else PAYMENT_NO_ANSWER) from None

            def store(s: Session):
                q = self._load_quote(s, caller, quote_id, lock=True)
                self._require_open(q)
                if s.scalars(_QUOTE_PAYMENT, {"quote": q.id}).first() is None:
                    now = self.now()
                    s.add(Payment(quote_id=q.id, provider=link.provider, external_id=link.external_id, url=link.url,
                                  status="pending", amount=q.due_now, currency=q.currency, created_at=now,
                                  updated_at=now))
                    s.flush()
                    self._audit_ok(s, caller, "payment.link_created", f"quote:{q.id}",
                                   {"provider": link.provider, "amount": q.due_now})
                if posted_card is not None:  # (a savepoint: the same card recorded at once elsewhere is fine)
                    with contextlib.suppress(IntegrityError), s.begin_nested():
                        self._posted_card(s, q.account_id, "quote", q.id, *posted_card)
                        s.flush()
                return self._quote_view(s, q), posted_card is not None

            try:
                return self.db.write(store)
            except IntegrityError:  # a concurrent click stored the link first: return that one
                with self.db.read() as s:
                    return self._quote_view(s, self._load_quote(s, caller, quote_id)), False
        except DomainError as e:
            self._refused(actor, "payment.link", e, target)
            raise

    @staticmethod
    def _billed_as(view: QuoteView) -> str:
        """What a quote buys, as the provider's page or invoice line names it."""
        if view.kind == "upgrade":
            return f"Upgrade {len(view.users)} × {view.from_plan_name} → {view.to_plan_name}"
        return "Licenses: " + ", ".join(f"{ln.quantity} × {ln.plan_name} ({ln.interval}ly)" for ln in view.lines)

    def _payment_request(self, s: Session, quote: Quote, account: Account) -> PaymentRequest:
        view = self._quote_view(s, quote)
        desc = self._billed_as(view)
        lines = tuple(PaymentLine(f"{ln.kind} {ln.quantity} × {ln.plan_name}", ln.amount) for ln in view.lines)
        return PaymentRequest(quote_id=quote.id, account_id=account.id, account_name=account.name,
                              currency=quote.currency, amount=quote.due_now, description=desc[:250], lines=lines,
                              expires_at=quote.expires_at, customer_ref=account.billing_ref,
                              idempotency_key=_attempt_key(quote.id, "link", quote.link_attempt),
                              attempt_at=quote.link_attempt_at or quote.created_at)

    def _next_attempt(self, quote_id: str, column, tried: int) -> None:
        """Start the next attempt (a new idempotency key) after ``tried`` got a definite answer,
        once whatever the number of processes that saw that answer (compare and set)."""
        values = {column.key: tried + 1}
        if column is Quote.link_attempt:
            values["link_attempt_at"] = self.now()
        self.db.write(lambda s: s.execute(update(Quote).where(Quote.id == quote_id, column == tried).values(**values)))

    def cancel_quote(self, actor: Actor, quote_id) -> QuoteView:
        def fn(s: Session, caller: CallerView):
            quote = self._load_quote(s, caller, quote_id, lock=True)
            self._require_open(quote)
            self._close_quote(s, quote, "cancelled", caller.user_id)
            self._audit_ok(s, caller, "quote.cancelled", f"quote:{quote.id}")
            return self._quote_view(s, quote)

        return self._command(actor, "quote.cancel", fn, target=f"quote:{quote_id}")

    def confirm_without_payment(self, actor: Actor, quote_id) -> QuoteView:
        """A quote with nothing due (e.g. a 100 % discount) is applied without a payment."""

        def fn(s: Session, caller: CallerView):
            quote = self._load_quote(s, caller, quote_id, lock=True)
            self._require_open(quote)
            if quote.due_now > 0:
                raise InvalidInput(Message("This quote has an amount due: pay it through the payment link."))
            self._apply(s, quote, "none", None)
            self._audit_ok(s, caller, "quote.confirmed", f"quote:{quote.id}")
            return self._quote_view(s, quote)

        return self._command(actor, "quote.confirm", fn, target=f"quote:{quote_id}")

    def _close_quote(self, s: Session, quote: Quote, status: str, by: int | None, note: str | None = None) -> None:
        quote.status = status
        quote.closed_at = self.now()
        quote.closed_by = by
        if note:
            quote.note = note
        s.execute(delete(QuoteHold).where(QuoteHold.quote_id == quote.id))
        if status != "paid":
            self._close_link(s, quote)
        if status in ("cancelled", "expired") and quote.request_id is not None:
            self._reopen_request(s, quote, status)
        self._queue_quote_cards(s, quote, status)

    def _close_link(self, s: Session, quote: Quote) -> None:
        """A closed quote's payment link must not stay payable: the provider is asked to close it
        through the billing outbox (retried while it does not answer). The sandbox page already
        refuses a quote that is not open: its link is closed at once."""
        payment = s.scalars(_QUOTE_PAYMENT, {"quote": quote.id}).first()
        if payment is None or payment.status != "pending":
            return
        payment.updated_at = self.now()
        if payment.provider == SandboxGateway.name:
            payment.status = "closed"
            return
        payment.status = "closing"
        self._outbox(s, account_id=quote.account_id, channel="billing", kind="close_link",
                     dedupe_key=f"billing:close:{quote.id}:{payment.id}", payload={"payment_id": payment.id})

    def link_to_close(self, payload: dict) -> str | None:
        """The provider's id of the link a ``close_link`` billing message asks to close (None: done)."""
        with self.db.read() as s:
            payment = s.get(Payment, payload.get("payment_id"))
            return payment.external_id if payment is not None and payment.status == "closing" else None

    def link_closed(self, payload: dict, closed: bool) -> None:
        """The provider answered a ``close_link``: closed (the quote's cards now say nothing was
        charged), or not closable because the payment went through: its event will follow and
        the payment is refunded, never applied (the cards keep saying so)."""

        def work(s: Session) -> None:
            payment = s.get(Payment, payload.get("payment_id"), with_for_update=True)
            if payment is None or payment.status != "closing":
                return
            if not closed:
                log.warning("quote %s: its payment link could not be closed, a payment went through; it will be "
                            "refunded", payment.quote_id)
                return
            self._mark_link_closed(s, payment)

        self.db.write(work)

    def _mark_link_closed(self, s: Session, payment: Payment) -> None:
        payment.status = "closed"
        payment.updated_at = self.now()
        self._queue_quote_cards(s, s.get(Quote, payment.quote_id), "link_closed")

    def _reopen_request(self, s: Session, quote: Quote, status: str) -> None:
        """An approved upgrade request whose quote closed unpaid goes back to the administrators:
        pending again, its cards updated in place, the requester told."""
        req = s.get(UpgradeRequest, quote.request_id, with_for_update=True)
        if req is None or req.status != "approved" or req.quote_id != quote.id:
            return
        other = s.scalar(select(UpgradeRequest.id).where(
            UpgradeRequest.requester_id == req.requester_id, UpgradeRequest.family == req.family,
            UpgradeRequest.status == "pending"))
        if other is not None:  # the requester asked again meanwhile: that request stands instead
            return
        req.status, req.decided_by, req.decided_at, req.quote_id = "pending", None, None, None
        s.flush()
        for card in s.scalars(select(PostedCard).where(PostedCard.subject == "request",
                                                       PostedCard.subject_id == str(req.id))):
            self._outbox(s, account_id=req.account_id, channel="card", kind="request_card",
                         dedupe_key=f"card:{card.id}:reopened:{quote.id}",
                         payload={"posted_card": card.id, "request_id": req.id})
        self._outbox(s, account_id=req.account_id, channel="chat", kind="request_reopened",
                     user_id=req.requester_id, dedupe_key=f"request:{req.id}:reopened:{quote.id}",
                     payload={"request_id": req.id, "quote_status": status})
        self._audit_ok(s, None, "request.reopened", f"request:{req.id}", {"quote": quote.id, "why": status},
                       account_id=req.account_id)

    def expire_quotes(self, limit: int = 200) -> int:
        """The expiry sweep: close the open quotes whose time ran out (status expired, seats freed,
        payment link closed at the provider, cards updated). Returns how many were closed."""
        now = self.now()

        def work(s: Session) -> int:
            due = s.scalars(select(Quote).where(Quote.status == "open", Quote.expires_at <= now)
                            .order_by(Quote.expires_at).limit(limit).with_for_update(skip_locked=True)).all()
            for quote in due:
                self._close_quote(s, quote, "expired", None)
                self._audit(s, account_id=quote.account_id, tenant_id=None, actor_id=None, actor=SYSTEM,
                            action="quote.expired", target=f"quote:{quote.id}")
            return len(due)

        return self.db.write(work)

    def _queue_quote_cards(self, s: Session, quote: Quote, change: str) -> None:
        """Queue the in-place update of every card showing the quote, once per ``change``."""
        cards = s.scalars(select(PostedCard).where(PostedCard.subject == "quote", PostedCard.subject_id == quote.id))
        for card in cards:
            self._outbox(s, account_id=quote.account_id, channel="card", kind="quote_card",
                         dedupe_key=f"card:{card.id}:{quote.id}:{change}",  # (a dropped card's id may be reused)
                         payload={"posted_card": card.id, "quote_id": quote.id})

    # ------------------------------------------------------------------ settlement

    def handle_payment_event(self, event: PaymentEvent) -> EventResult:
        """A provider's authenticated event: processed once per event id, in one transaction."""

        def work(s: Session) -> EventResult:
            try:
                with s.begin_nested():
                    s.add(PaymentEventRecord(provider=event.provider, event_id=event.event_id, kind=event.kind,
                                             quote_id=(event.quote_id or "")[:32] or None, result="processing",
                                             received_at=self.now()))
                    s.flush()
            except IntegrityError:
                return EventResult("duplicate", event.quote_id)
            record = s.get(PaymentEventRecord, (event.provider, event.event_id))
            result = self._on_event(s, event)
            record.result = result.result
            return result

        return self.db.write(work)

    def _on_event(self, s: Session, event: PaymentEvent) -> EventResult:
        if event.kind == "ignored" or not event.quote_id:
            return EventResult("ignored", event.quote_id)
        quote = s.scalars(select(Quote).where(Quote.id == event.quote_id).with_for_update()).first()
        if quote is None:
            self._audit(s, account_id=None, tenant_id=None, actor_id=None, actor=event.provider,
                        action="payment.unknown_quote", outcome="refused", target=f"quote:{event.quote_id}",
                        message="A payment event named a quote that does not exist.",
                        detail={"event": event.event_id, "kind": event.kind})
            return EventResult("unknown_quote", event.quote_id)
        payment = s.scalars(select(Payment).where(Payment.quote_id == quote.id).with_for_update()).first()
        if event.kind in ("failed", "expired"):
            if (payment and payment.status == "closing" and event.kind == "expired"
                    and event.external_id in (None, payment.external_id)):
                self._mark_link_closed(s, payment)  # the provider confirms the link we asked it to close
            elif payment and payment.status == "pending" and event.external_id in (None, payment.external_id):
                # That link is dead (an expired link cannot be paid; a failed asynchronous
                # payment completed it unpaid), and its key would replay it: the quote, while open,
                # gets a new link under the next attempt's key, and its cards say what happened.
                s.delete(payment)
                quote.payment_lapsed = event.kind
                quote.link_attempt += 1
                quote.link_attempt_at = self.now()
                self._queue_quote_cards(s, quote, f"lapsed:{event.event_id}")
            self._audit(s, account_id=quote.account_id, tenant_id=None, actor_id=None, actor=event.provider,
                        action=f"payment.{event.kind}", target=f"quote:{quote.id}", detail={"event": event.event_id})
            return EventResult(event.kind, quote.id)
        # kind == "paid"
        if payment is None or payment.provider != event.provider or (
                event.external_id and payment.external_id != event.external_id):
            return self._refund_needed(s, quote, event, "The payment does not match this quote's payment link.")
        if event.amount is not None and (event.amount != quote.due_now
                                         or (event.currency or "").upper() != quote.currency):
            return self._refund_needed(s, quote, event, "The amount paid differs from the quoted amount.")
        payment.status = "paid"
        payment.updated_at = self.now()
        payment.payer_email = event.payer or payment.payer_email
        if quote.status == "paid":
            return EventResult("already_paid", quote.id)
        if quote.status == "refund_needed":
            return EventResult("refund_needed", quote.id)
        problem = self._outside_its_period(s, quote)  # (first: the reason that says to quote again)
        if problem is None and (quote.status != "open" or quote.expires_at <= self.now()):  # cancelled, expired
            problem = str(REFUND_CLOSED)
        problem = problem or self._still_applicable(s, quote)
        if problem:
            return self._refund_needed(s, quote, event, problem)
        self._apply(s, quote, event.provider, event.event_id)
        return EventResult("settled", quote.id)

    def _refund_needed(self, s: Session, quote: Quote, event: PaymentEvent, why: str) -> EventResult:
        if quote.status == "paid":
            # a second, different payment for a quote already settled: money to give back
            why = "This quote was already paid; a second payment arrived. " + why
        else:
            self._close_quote(s, quote, "refund_needed", None, note=why)
        self._audit(s, account_id=quote.account_id, tenant_id=None, actor_id=None, actor=event.provider,
                    action="payment.refund_needed", outcome="refused", target=f"quote:{quote.id}", message=why,
                    detail={"event": event.event_id, "amount": event.amount})
        self._outbox(s, account_id=quote.account_id, channel="chat", kind="refund_needed", user_id=quote.created_by,
                     dedupe_key=f"refund:{quote.id}:{event.event_id}", payload={"quote_id": quote.id, "reason": why})
        return EventResult("refund_needed", quote.id)

    def _outside_its_period(self, s: Session, quote: Quote) -> str | None:
        """Why a paid quote cannot be applied because a billing period it was priced in has ended
        (its few cents would buy the change for the whole next period), or None."""
        now = self.now()
        for ln in quote.lines:
            if ln.get("new_period"):
                continue
            if quote.kind == "upgrade":
                pool = s.get(Pool, quote.pool_id)
                sub = s.get(Subscription, pool.subscription_id) if pool is not None else None
            else:
                sub = s.scalars(select(Subscription).where(Subscription.account_id == quote.account_id,
                                                           Subscription.interval == ln["interval"])).first()
            if sub is None or _utc(self._current(s, sub, now).period_start) != _utc(
                    datetime.fromisoformat(ln["period_start"])):
                return str(REFUND_OTHER_PERIOD)
        return None

    def _still_applicable(self, s: Session, quote: Quote) -> str | None:
        """Whether a paid quote can still be applied as quoted (it may have expired or been
        cancelled while the payment was under way)."""
        if quote.kind != "upgrade":
            return None
        pool = s.get(Pool, quote.pool_id)
        seats = s.scalars(select(Seat).where(Seat.pool_id == quote.pool_id, Seat.user_id.in_(quote.user_ids))).all()
        if pool is None or len(seats) != len(quote.user_ids):
            return "Some of the quoted users no longer hold a seat in the pool."
        try:
            self._check_not_held(s, [seat.id for seat in seats], self.now(), except_quote=quote.id)
        except HeldByQuote as e:
            return str(e.message)  # (stored with the quote: a plain str)
        return None

    def _get_or_create_pool(self, s: Session, sub: Subscription, plan_code: str, *,
                            created_at: datetime | None = None) -> Pool:
        """The subscription's pool of that plan, locked; created once even when two settlements (in
        two processes), or a settlement and a downgrade at renewal, need it at the same moment."""
        q = select(Pool).where(Pool.subscription_id == sub.id, Pool.plan_code == plan_code).with_for_update()
        pool = s.scalars(q).first()
        if pool is None:
            s.execute(conflict_insert(s, Pool).values(
                account_id=sub.account_id, subscription_id=sub.id, plan_code=plan_code, quantity=0,
                removal_scheduled=0, created_at=created_at or self.now()).on_conflict_do_nothing(
                index_elements=[Pool.subscription_id, Pool.plan_code]))
            pool = s.scalars(q).one()
        return pool

    def _apply(self, s: Session, quote: Quote, provider: str, event_id: str | None) -> None:
        """Settle a quote: seats move or are added, audit and notifications written, all in the
        caller's transaction. The quote row is locked, so this runs once per quote."""
        now = self.now()
        touched: dict[int, Subscription] = {}
        if quote.kind == "upgrade":
            source = s.scalars(select(Pool).where(Pool.id == quote.pool_id).with_for_update()).one()
            sub = self._current(s, s.get(Subscription, source.subscription_id), now)
            target = self._get_or_create_pool(s, sub, quote.to_plan)
            seat_ids = []
            for chunk in _chunks(quote.user_ids):
                seat_ids += s.scalars(select(Seat.id).where(Seat.pool_id == source.id, Seat.user_id.in_(chunk))).all()
            n = len(seat_ids)
            for chunk in _chunks(seat_ids):
                # one statement per chunk: each seat changes pool in place, never unassigned
                s.execute(update(Seat).where(Seat.id.in_(chunk)).values(pool_id=target.id, downgrade_to=None,
                                                                        plan_since=now))
            source.quantity -= n
            source.removal_scheduled = min(source.removal_scheduled, source.quantity - self._assigned(s, source.id))
            target.quantity += n
            touched[sub.id] = sub
            for uid in quote.user_ids:
                self._outbox(s, account_id=quote.account_id, channel="chat", kind="license_upgraded", user_id=uid,
                             dedupe_key=f"quote:{quote.id}:user:{uid}",
                             payload={"quote_id": quote.id, "from_plan": quote.from_plan, "to_plan": quote.to_plan,
                                      "effective": now.isoformat()})
        else:
            for ln in quote.lines:
                of_interval = select(Subscription).where(Subscription.account_id == quote.account_id,
                                                         Subscription.interval == ln["interval"]).with_for_update()
                sub = s.scalars(of_interval).first()
                if sub is None:
                    # The first of this interval, unless a concurrent settlement (another quote priced
                    # as a new period too) creates it first: then these seats join its period, which
                    # starts at that settlement, after this quote was priced, so it ends no earlier
                    # than quoted; the amount paid is what was quoted (a full period from its time).
                    start, end = period_bounds(now, ln["interval"], 0)
                    s.execute(conflict_insert(s, Subscription).values(
                        account_id=quote.account_id, interval=ln["interval"], anchor_at=now, period_number=0,
                        period_start=start, period_end=end, created_at=now).on_conflict_do_nothing(
                        index_elements=[Subscription.account_id, Subscription.interval]))
                    sub = s.scalars(of_interval).one()
                else:
                    self._current(s, sub, now)
                pool = self._get_or_create_pool(s, sub, ln["plan_code"])
                pool.quantity += ln["quantity"]
                touched[sub.id] = sub
            self._outbox(s, account_id=quote.account_id, channel="chat", kind="purchase_paid",
                         user_id=quote.created_by, dedupe_key=f"quote:{quote.id}:buyer",
                         payload={"quote_id": quote.id})
        if quote.carried:  # billed with the next invoice, through the provider, once (outbox + key)
            self._outbox(s, account_id=quote.account_id, channel="billing", kind="carry_forward",
                         dedupe_key=f"billing:carry:{quote.id}", payload={"quote_id": quote.id})
        self._close_quote(s, quote, "paid", None)
        self._audit(s, account_id=quote.account_id, tenant_id=None, actor_id=None, actor=provider,
                    action="quote.settled", target=f"quote:{quote.id}",
                    detail={"kind": quote.kind, "due_now": quote.due_now, "carried": quote.carried or 0,
                            "users": len(quote.user_ids), "event": event_id})
        s.flush()
        for sub in touched.values():
            self._queue_billing_sync(s, sub, f"quote:{quote.id}:{sub.id}")

    def _assigned(self, s: Session, pool_id: int) -> int:
        return s.scalar(select(func.count()).select_from(Seat).where(Seat.pool_id == pool_id)) or 0

    # ------------------------------------------------------------------ sandbox payment pages

    def _sandbox_payment(self, s: Session, token: str) -> Payment | None:
        if not isinstance(token, str) or not 16 <= len(token) <= 64:
            return None
        return s.scalars(select(Payment).where(Payment.provider == "sandbox", Payment.external_id == token)).first()

    def pay_page(self, token: str) -> PayPage:
        with self.db.read() as s:
            payment = self._sandbox_payment(s, token)
            if payment is None:
                return PayPage("unknown")
            quote = s.get(Quote, payment.quote_id)
            view = self._quote_view(s, quote)
            state = {"open": "payable"}.get(view.status, view.status)
            return PayPage(state, view, s.get(Account, quote.account_id).name)

    def sandbox_pay(self, token: str) -> PayPage:
        page = self.pay_page(token)
        if page.state != "payable":
            return page
        q = page.quote
        self.handle_payment_event(PaymentEvent(provider="sandbox", event_id=f"sandbox:{token}:paid", kind="paid",
                                               quote_id=q.id, external_id=token, amount=q.due_now,
                                               currency=q.currency))
        return self.pay_page(token)

    def sandbox_cancel(self, token: str) -> PayPage:
        page = self.pay_page(token)
        if page.state != "payable":
            return page

        def work(s: Session):
            quote = s.scalars(select(Quote).where(Quote.id == page.quote.id).with_for_update()).one()
            if self._effective_status(quote) == "open":
                self._close_quote(s, quote, "cancelled", None)
                self._audit(s, account_id=quote.account_id, tenant_id=None, actor_id=None, actor="payment page",
                            action="quote.cancelled", target=f"quote:{quote.id}")

        self.db.write(work)
        return self.pay_page(token)

    # ------------------------------------------------------------------ seats

    def _user(self, s: Session, caller: CallerView, user_id) -> User:
        uid = parse_id(user_id, "user")
        user = s.scalars(select(User).where(User.id == uid, User.account_id == caller.account_id)).first()
        if user is None:
            raise NotFound(Message("That user is not in your account."))
        return user

    def _check_domain(self, s: Session, account_id: int, email: str) -> None:
        domain = email.rsplit("@", 1)[-1].lower() if "@" in email else ""
        ok = s.scalar(select(AccountDomain.domain).where(AccountDomain.account_id == account_id,
                                                         AccountDomain.domain == domain))
        if not ok:
            raise DomainNotApproved(Message("{email} is not on an approved e-mail domain of your account, so it "
                                            "cannot hold a license. An administrator can approve the domain first.",
                                            email=email))

    def assign(self, actor: Actor, user_id, pool_id) -> PoolView:
        def fn(s: Session, caller: CallerView):
            now = self.now()
            pool = self._pool(s, caller, pool_id, lock=True)
            user = self._user(s, caller, user_id)
            # one assignment of this user at a time (two pools of a family are two pool locks): the
            # check below then sees the seat a concurrent assignment committed, and refuses clearly
            s.execute(select(User.id).where(User.id == user.id).with_for_update())
            plan = self.catalog.plan(pool.plan_code)
            self._check_domain(s, caller.account_id, user.email)
            held = s.execute(select(Pool.plan_code).select_from(Seat).join(Pool, Pool.id == Seat.pool_id)
                             .where(Seat.user_id == user.id, Seat.family == plan.family)).first()
            if held:
                raise SeatAlreadyHeld(Message("{name} already holds a {plan} license ({family} family). Upgrade or "
                                              "unassign it instead.", name=user.name, plan=self._plan_name(held[0]),
                                              family=self.catalog.families[plan.family]))
            sub = self._current(s, s.get(Subscription, pool.subscription_id), now)
            if pool.quantity - self._assigned(s, pool.id) - pool.removal_scheduled <= 0:
                raise NoFreeSeat(Message("There is no free {plan} seat in this pool. Buy one, or unassign someone "
                                         "first.", plan=plan.name), plan=plan.code, interval=sub.interval)
            s.add(Seat(account_id=caller.account_id, pool_id=pool.id, user_id=user.id, family=plan.family,
                       sort_key=user.sort_key, assigned_at=now, plan_since=now))
            s.flush()
            self._outbox(s, account_id=caller.account_id, channel="chat", kind="license_assigned", user_id=user.id,
                         dedupe_key=f"assign:{pool.id}:{user.id}:{uuid.uuid4().hex}",
                         payload={"plan": plan.code, "interval": sub.interval, "by": caller.name})
            self._audit_ok(s, caller, "seat.assigned", f"user:{user.id}", {"pool": pool.id, "plan": plan.code})
            return self._pool_view(s, pool, sub, caller.currency)

        return self._command(actor, "seat.assign", fn, target=f"user:{user_id}")

    def unassign(self, actor: Actor, pool_id, user_ids) -> PoolView:
        def fn(s: Session, caller: CallerView):
            now = self.now()
            pool = self._pool(s, caller, pool_id, lock=True)
            sub = self._current(s, s.get(Subscription, pool.subscription_id), now)
            seats = self._seats_of(s, pool, parse_ids(user_ids), lock=True)
            self._check_not_held(s, [seat.id for seat in seats], now, by=caller.user_id)
            for seat in seats:
                s.delete(seat)
                # seat ids come back on SQLite (no AUTOINCREMENT): the key also names the user and the time
                self._outbox(s, account_id=caller.account_id, channel="chat", kind="license_unassigned",
                             user_id=seat.user_id, dedupe_key=f"unassign:{seat.id}:{seat.user_id}:{uuid.uuid4().hex}",
                             payload={"plan": pool.plan_code, "by": caller.name})
            self._audit_ok(s, caller, "seat.unassigned", f"pool:{pool.id}",
                           {"users": [seat.user_id for seat in seats][:50], "count": len(seats)})
            s.flush()
            return self._pool_view(s, pool, sub, caller.currency)

        return self._command(actor, "seat.unassign", fn, target=f"pool:{pool_id}")

    def _check_removable(self, s: Session, pool: Pool, n: int) -> None:
        free = pool.quantity - self._assigned(s, pool.id) - pool.removal_scheduled
        if n > free:
            raise SeatsAssigned(Message.counted("Only {free} seat of this pool is free. Unassign users first, then "
                                                "remove their seats.",
                                                "Only {free} seats of this pool are free. Unassign users first, then "
                                                "remove their seats.", "free", free=max(free, 0)), free=max(free, 0))

    def remove_seats(self, actor: Actor, pool_id, quantity, *, expected_scheduled: int | None = None) -> PoolView:
        """Remove free seats at the period end (nothing is refunded). ``expected_scheduled``: the
        removal the caller saw scheduled; if it changed meanwhile (a double click, another
        admin), nothing is done."""

        def fn(s: Session, caller: CallerView):
            pool = self._pool(s, caller, pool_id, lock=True)
            n = parse_quantity(quantity)
            sub = self._current(s, s.get(Subscription, pool.subscription_id), self.now())  # before scheduling
            if expected_scheduled is not None and pool.removal_scheduled != expected_scheduled:
                raise InvalidInput(Message.counted("The seats to remove from this pool changed since this card was "
                                                   "shown: {scheduled} now leaves at renewal. Nothing more was "
                                                   "removed.",
                                                   "The seats to remove from this pool changed since this card was "
                                                   "shown: {scheduled} now leave at renewal. Nothing more was "
                                                   "removed.", "scheduled", scheduled=pool.removal_scheduled),
                                   scheduled=pool.removal_scheduled)
            self._check_removable(s, pool, n)
            pool.removal_scheduled += n
            self._audit_ok(s, caller, "seats.removal_scheduled", f"pool:{pool.id}",
                           {"quantity": n, "effective": sub.period_end.isoformat()})
            s.flush()
            self._queue_billing_sync(s, sub, f"removal:{pool.id}:{pool.removal_scheduled}:{self.now().isoformat()}")
            return self._pool_view(s, pool, sub, caller.currency)

        return self._command(actor, "seats.remove", fn, target=f"pool:{pool_id}")

    def preview_removal(self, actor: Actor, pool_id, quantity) -> PoolView:
        """The pool as it would be after :meth:`remove_seats` (same checks; nothing written):
        its renewal quantity and amount without the seats removed."""

        def fn(s: Session, caller: CallerView):
            pool = self._pool(s, caller, pool_id)
            n = parse_quantity(quantity)
            self._check_removable(s, pool, n)
            sub = s.get(Subscription, pool.subscription_id)
            view = self._pool_view(s, pool, sub, caller.currency)
            qty = view.renewal_quantity - n
            d_next = self._rate_at(s, pool.account_id, sub.period_end)
            return replace(view, removal_scheduled=view.removal_scheduled + n, renewal_quantity=qty,
                           renewal_amount=pricing.renewal_amount(qty, view.unit_price, d_next))

        return self._query(actor, "seats.remove_preview", fn, target=f"pool:{pool_id}")

    def cancel_removal(self, actor: Actor, pool_id) -> PoolView:
        def fn(s: Session, caller: CallerView):
            pool = self._pool(s, caller, pool_id, lock=True)
            sub = self._current(s, s.get(Subscription, pool.subscription_id), self.now())  # past ends apply first
            pool.removal_scheduled = 0
            self._audit_ok(s, caller, "seats.removal_cancelled", f"pool:{pool.id}")
            s.flush()
            self._queue_billing_sync(s, sub, f"removal:{pool.id}:0:{self.now().isoformat()}")
            return self._pool_view(s, pool, sub, caller.currency)

        return self._command(actor, "seats.remove_cancel", fn, target=f"pool:{pool_id}")

    def schedule_downgrade(self, actor: Actor, pool_id, user_ids, to_plan) -> PoolView:
        """Move users to a lower plan at the period end; they keep their tier until then."""

        def fn(s: Session, caller: CallerView):
            now = self.now()
            pool = self._pool(s, caller, pool_id, lock=True)
            sub = self._current(s, s.get(Subscription, pool.subscription_id), now)  # before reading the seats
            seats = self._seats_of(s, pool, parse_ids(user_ids), lock=True)
            plan_a = self.catalog.plan(pool.plan_code)
            if not isinstance(to_plan, str) or not to_plan:
                raise InvalidInput(Message("Choose the plan to downgrade to."))
            plan_b = self.catalog.plan(to_plan)
            if plan_b.family != plan_a.family:
                raise WrongFamily(Message("{plan} is not in the same family as {current}.", plan=plan_b.name,
                                          current=plan_a.name))
            if plan_b.rank >= plan_a.rank:
                raise NotADowngrade(Message("{plan} is not below {current}: a downgrade goes to a lower tier.",
                                            plan=plan_b.name, current=plan_a.name))
            self.catalog.priced_plan(plan_b.code, sub.interval, caller.currency)
            self._check_not_held(s, [seat.id for seat in seats], now, by=caller.user_id)
            # a replayed schedule (double click) changes nobody and tells nobody twice
            seats = [seat for seat in seats if seat.downgrade_to != plan_b.code]
            if not seats:
                raise InvalidInput(Message("The downgrade to {plan} is already scheduled for the selected users "
                                           "({date:%Y-%m-%d}). Nothing was changed.", plan=plan_b.name,
                                           date=sub.period_end))
            for seat in seats:
                seat.downgrade_to = plan_b.code
                self._outbox(s, account_id=caller.account_id, channel="chat", kind="downgrade_scheduled",
                             user_id=seat.user_id, dedupe_key=f"downgrade-scheduled:{seat.id}:{uuid.uuid4().hex}",
                             payload={"from_plan": plan_a.code, "to_plan": plan_b.code,
                                      "effective": sub.period_end.isoformat()})
            self._audit_ok(s, caller, "downgrade.scheduled", f"pool:{pool.id}",
                           {"to": plan_b.code, "users": len(seats), "effective": sub.period_end.isoformat()})
            s.flush()
            self._queue_billing_sync(s, sub, f"downgrade:{pool.id}:{now.isoformat()}")
            return self._pool_view(s, pool, sub, caller.currency)

        return self._command(actor, "downgrade.schedule", fn, target=f"pool:{pool_id}")

    def cancel_downgrade(self, actor: Actor, pool_id, user_ids) -> PoolView:
        def fn(s: Session, caller: CallerView):
            now = self.now()
            pool = self._pool(s, caller, pool_id, lock=True)
            sub = self._current(s, s.get(Subscription, pool.subscription_id), now)  # past ends apply first
            seats = [seat for seat in self._seats_of(s, pool, parse_ids(user_ids), lock=True) if seat.downgrade_to]
            if not seats:
                raise InvalidInput(Message("None of these users has a downgrade scheduled."))
            for seat in seats:
                seat.downgrade_to = None
                self._outbox(s, account_id=caller.account_id, channel="chat", kind="downgrade_cancelled",
                             user_id=seat.user_id, dedupe_key=f"downgrade-cancelled:{seat.id}:{uuid.uuid4().hex}",
                             payload={"plan": pool.plan_code})
            self._audit_ok(s, caller, "downgrade.cancelled", f"pool:{pool.id}", {"users": len(seats)})
            s.flush()
            self._queue_billing_sync(s, sub, f"downgrade-cancel:{pool.id}:{now.isoformat()}")
            return self._pool_view(s, pool, sub, caller.currency)

        return self._command(actor, "downgrade.cancel", fn, target=f"pool:{pool_id}")

    # ------------------------------------------------------------------ my license, users

    def my_license(self, actor: Actor) -> list[SeatView]:
        def fn(s: Session, caller: CallerView):
            rows = s.execute(select(Seat, Pool, Subscription).join(Pool, Pool.id == Seat.pool_id)
                             .join(Subscription, Subscription.id == Pool.subscription_id)
                             .where(Seat.user_id == caller.user_id)).all()
            out = []
            for seat, pool, sub in rows:
                plan = self.catalog.plan(pool.plan_code)
                out.append(SeatView(plan_code=plan.code, plan_name=plan.name, family=plan.family,
                                    interval=sub.interval, pool_id=pool.id, since=seat.plan_since,
                                    renewal_date=sub.period_end, downgrade_to=seat.downgrade_to,
                                    downgrade_to_name=self._plan_name(seat.downgrade_to),
                                    higher_plans=[self.plan_view(p) for p in self.catalog.higher_plans(plan)
                                                  if p.currency == caller.currency]))
            return sorted(out, key=lambda v: v.family)

        return self._query(actor, "my_license", fn, admin=False)

    def add_user(self, actor: Actor, aad_object_id: str, email: str, name: str) -> UserRow:
        """Add a person (e.g. picked from the tenant's directory) to the account, only if their
        e-mail domain is approved. Adding someone already there returns them unchanged."""

        def fn(s: Session, caller: CallerView):
            aad = clean_text(aad_object_id, max_length=64, field="directory id", required=True)
            mail = (clean_text(email, max_length=320, field="e-mail", required=True) or "").lower()
            display = clean_text(name, max_length=200, field="name", required=True)
            if mail.count("@") != 1:
                raise InvalidInput(Message("That e-mail address is not valid."))
            existing = s.scalars(select(User).where(User.account_id == caller.account_id,
                                                    User.aad_object_id == aad)).first()
            if existing:
                return UserRow(existing.id, existing.name, existing.email)
            self._check_domain(s, caller.account_id, mail)
            user = self._insert_user(s, caller.account_id, aad, mail, display, "member")
            self._audit_ok(s, caller, "user.added", f"user:{user.id}", {"email": mail})
            return UserRow(user.id, user.name, user.email)

        return self._command(actor, "user.add", fn, target=f"aad:{aad_object_id}")

    def _insert_user(self, s: Session, account_id: int, aad: str, email: str, name: str, role: str) -> User:
        user = User(account_id=account_id, aad_object_id=aad, email=email.lower(), name=name,
                    sort_key=sort_key(name), role=role, unreachable=False, created_at=self.now())
        s.add(user)
        s.flush()
        s.add_all(UserTerm(user_id=user.id, term=t, account_id=account_id) for t in search_terms(name, email))
        return user

    # ------------------------------------------------------------------ upgrade requests

    def _request_view(self, s: Session, req: UpgradeRequest) -> RequestView:
        requester = s.get(User, req.requester_id)
        decider = s.get(User, req.decided_by) if req.decided_by else None
        return RequestView(id=req.id, status=req.status, requester_id=req.requester_id,
                           requester_name=requester.name, requester_email=requester.email, family=req.family,
                           from_plan=req.from_plan, from_plan_name=self._plan_name(req.from_plan),
                           to_plan=req.to_plan, to_plan_name=self._plan_name(req.to_plan), reason=req.reason,
                           created_at=req.created_at, decided_by_name=decider.name if decider else None,
                           decided_at=req.decided_at, decline_reason=req.decline_reason, quote_id=req.quote_id,
                           account_id=req.account_id)

    def request_upgrade(self, actor: Actor, to_plan, reason=None) -> RequestView:
        def fn(s: Session, caller: CallerView):
            if not isinstance(to_plan, str) or not to_plan:
                raise InvalidInput(Message("Choose the plan you would like."))
            plan = self.catalog.plan(to_plan)
            text = clean_text(reason, max_length=500, field="reason")
            current = s.execute(select(Pool.plan_code).select_from(Seat).join(Pool, Pool.id == Seat.pool_id)
                                .where(Seat.user_id == caller.user_id, Seat.family == plan.family)).first()
            if current is None:
                raise InvalidInput(Message("You hold no {family} license yet. Ask an administrator to assign one to "
                                           "you.", family=self.catalog.families[plan.family]))
            from_plan = self.catalog.plan(current[0])
            if plan.rank <= from_plan.rank:
                raise NotAnUpgrade(Message("{plan} is not above your current plan, {current}.", plan=plan.name,
                                           current=from_plan.name))
            if plan.currency != caller.currency:
                raise CurrencyMismatch(Message("{plan} is sold in {sold_in}, but your account is billed in "
                                               "{billed_in}.", plan=plan.name, sold_in=plan.currency,
                                               billed_in=caller.currency))
            pending = s.scalars(select(UpgradeRequest).where(
                UpgradeRequest.requester_id == caller.user_id, UpgradeRequest.family == plan.family,
                UpgradeRequest.status == "pending")).first()
            if pending:
                raise RequestClosed(Message("You already asked for {plan} on {date:%Y-%m-%d}; an administrator will "
                                            "answer soon.", plan=self._plan_name(pending.to_plan),
                                            date=pending.created_at))
            approved = s.execute(
                select(UpgradeRequest.to_plan).join(Quote, Quote.id == UpgradeRequest.quote_id)
                .where(UpgradeRequest.requester_id == caller.user_id, UpgradeRequest.family == plan.family,
                       UpgradeRequest.status == "approved", Quote.status == "open", Quote.expires_at > self.now())
            ).first()
            if approved:
                raise RequestClosed(Message("Your request for {plan} was approved; an administrator is completing "
                                            "the payment. You will be told when it is active.",
                                            plan=self._plan_name(approved[0])))
            req = UpgradeRequest(account_id=caller.account_id, requester_id=caller.user_id, family=plan.family,
                                 from_plan=from_plan.code, to_plan=plan.code, reason=text, status="pending",
                                 created_at=self.now())
            s.add(req)
            try:
                s.flush()
            except IntegrityError:  # the same request sent twice at once (PostgreSQL): the index decides
                raise RequestClosed(Message("You already asked for an upgrade of your {family} license; an "
                                            "administrator will answer soon.",
                                            family=self.catalog.families[plan.family])) from None
            for admin_id in s.scalars(select(User.id).where(User.account_id == caller.account_id,
                                                            User.role == "admin")):
                self._outbox(s, account_id=caller.account_id, channel="chat", kind="request_created",
                             user_id=admin_id, dedupe_key=f"request:{req.id}:admin:{admin_id}",
                             payload={"request_id": req.id})
            self._audit_ok(s, caller, "request.created", f"request:{req.id}",
                           {"from": from_plan.code, "to": plan.code})
            return self._request_view(s, req)

        return self._command(actor, "request.create", fn, admin=False)

    def _load_request(self, s: Session, caller: CallerView, request_id, *, lock: bool = False) -> UpgradeRequest:
        rid = parse_id(request_id, "request")
        q = select(UpgradeRequest).where(UpgradeRequest.id == rid, UpgradeRequest.account_id == caller.account_id)
        req = s.scalars(q.with_for_update() if lock else q).first()
        if req is None:
            raise NotFound(Message("That upgrade request does not exist in your account."))
        return req

    def _decide(self, s: Session, caller: CallerView, request_id, status: str) -> UpgradeRequest:
        req = self._load_request(s, caller, request_id, lock=True)
        won = s.execute(update(UpgradeRequest)
                        .where(UpgradeRequest.id == req.id, UpgradeRequest.status == "pending")
                        .values(status=status, decided_by=caller.user_id, decided_at=self.now())
                        .execution_options(synchronize_session=False)).rowcount
        if won != 1:
            s.refresh(req)
            view = self._request_view(s, req)
            raise RequestClosed.decided(view.status, view.decided_by_name, view.decided_at, request_id=req.id)
        s.refresh(req)
        for card in s.scalars(select(PostedCard).where(PostedCard.subject == "request",
                                                       PostedCard.subject_id == str(req.id))):
            self._outbox(s, account_id=req.account_id, channel="card", kind="request_card",
                         dedupe_key=f"card:{card.id}:{req.id}:{status}",  # (a dropped card's id may be reused)
                         payload={"posted_card": card.id, "request_id": req.id})
        return req

    def approve_request(self, actor: Actor, request_id) -> QuoteView:
        """First decision wins; the approving admin gets the requester's upgrade quote."""

        def fn(s: Session, caller: CallerView):
            req = self._decide(s, caller, request_id, "approved")
            seat_pool = s.scalar(select(Seat.pool_id).where(Seat.user_id == req.requester_id,
                                                            Seat.family == req.family))
            if seat_pool is None:
                raise InvalidInput(Message("The requester no longer holds a license of that family; nothing was "
                                           "approved."))
            quote = self._quote_upgrade(s, caller, seat_pool, [req.requester_id], req.to_plan, req.id)
            req.quote_id = quote.id
            self._outbox(s, account_id=req.account_id, channel="chat", kind="request_approved",
                         user_id=req.requester_id, dedupe_key=f"request:{req.id}:approved",
                         payload={"request_id": req.id, "by": caller.name})
            self._audit_ok(s, caller, "request.approved", f"request:{req.id}", {"quote": quote.id})
            return quote

        return self._command(actor, "request.approve", fn, target=f"request:{request_id}")

    def decline_request(self, actor: Actor, request_id, reason=None) -> RequestView:
        def fn(s: Session, caller: CallerView):
            text = clean_text(reason, max_length=500, field="reason")
            req = self._decide(s, caller, request_id, "declined")
            req.decline_reason = text
            self._outbox(s, account_id=req.account_id, channel="chat", kind="request_declined",
                         user_id=req.requester_id, dedupe_key=f"request:{req.id}:declined",
                         payload={"request_id": req.id, "by": caller.name, "reason": text})
            self._audit_ok(s, caller, "request.declined", f"request:{req.id}")
            s.flush()
            return self._request_view(s, req)

        return self._command(actor, "request.decline", fn, target=f"request:{request_id}")

    def request(self, actor: Actor, request_id) -> RequestView:
        def fn(s: Session, caller: CallerView):
            req = self._load_request(s, caller, request_id)
            if not caller.is_admin and req.requester_id != caller.user_id:
                raise NotAdmin(Message("Only administrators can see other people's requests."))
            return self._request_view(s, req)

        return self._query(actor, "request.view", fn, admin=False, target=f"request:{request_id}")

    def pending_requests(self, actor: Actor, *, page=0, page_size=PAGE_SIZE) -> Page:
        def fn(s: Session, caller: CallerView):
            pg, size = self._page_args(page, page_size)
            cond = [UpgradeRequest.account_id == caller.account_id, UpgradeRequest.status == "pending"]
            total = s.scalar(select(func.count()).select_from(UpgradeRequest).where(*cond)) or 0
            reqs = s.scalars(select(UpgradeRequest).where(*cond).order_by(UpgradeRequest.id)
                             .limit(size).offset(pg * size)).all()
            return Page([self._request_view(s, r) for r in reqs], total, pg, size)

        return self._query(actor, "requests.list", fn)

    def my_requests(self, actor: Actor) -> list[RequestView]:
        """The caller's own open requests: pending, or approved with the quote still to be paid."""

        def fn(s: Session, caller: CallerView):
            now = self.now()
            reqs = s.scalars(
                select(UpgradeRequest).outerjoin(Quote, Quote.id == UpgradeRequest.quote_id)
                .where(UpgradeRequest.requester_id == caller.user_id,
                       or_(UpgradeRequest.status == "pending",
                           and_(UpgradeRequest.status == "approved", Quote.status == "open",
                                Quote.expires_at > now)))
                .order_by(UpgradeRequest.id).limit(MAX_PAGE_SIZE)).all()
            return [self._request_view(s, r) for r in reqs]

        return self._query(actor, "requests.mine", fn, admin=False)

    # ------------------------------------------------------------------ audit

    def audit_page(self, actor: Actor, *, page=0, page_size=PAGE_SIZE) -> Page:
        def fn(s: Session, caller: CallerView):
            pg, size = self._page_args(page, page_size)
            cond = AuditEvent.account_id == caller.account_id
            total = s.scalar(select(func.count()).select_from(AuditEvent).where(cond)) or 0
            rows = s.scalars(select(AuditEvent).where(cond).order_by(AuditEvent.id.desc())
                             .limit(size).offset(pg * size)).all()
            return Page([_audit_row(r) for r in rows], total, pg, size)

        return self._query(actor, "audit.list", fn)

    def export_audit_csv(self, account_id: int, out: io.TextIOBase | None = None, *,
                         headers: list[str] | None = None, say=str) -> str:
        """The account's audit log as CSV, oldest first (streamed in batches). ``headers``: the
        column names in the reader's language; ``say``: says a refusal's Message in it."""
        buf = out or io.StringIO()
        w = csv.writer(buf)
        w.writerow(headers or ["id", "created_at", "tenant_id", "actor", "action", "outcome", "target", "message"])
        with self.db.read() as s:
            if s.get(Account, account_id) is None:
                raise NotFound(Message("There is no account {account}.", account=account_id))
            last = 0
            while True:
                rows = s.scalars(select(AuditEvent).where(AuditEvent.account_id == account_id, AuditEvent.id > last)
                                 .order_by(AuditEvent.id).limit(1000)).all()
                if not rows:
                    break
                for r in rows:
                    w.writerow([r.id, r.created_at.isoformat(), r.tenant_id or "", _csv_safe(r.actor),
                                r.action, r.outcome, _csv_safe(r.target), _csv_safe(say(_stored_message(r) or ""))])
                last = rows[-1].id
        return buf.getvalue() if out is None else ""

    def export_audit(self, actor: Actor) -> str:
        caller = self.require_admin(actor, "audit.export")
        return self.export_audit_csv(caller.account_id)

    def user_actor(self, account_id, user_id) -> Actor | None:
        """The Teams identity (a tenant of the account, the Azure AD object id) of a user of the
        account, for a request that names the user by id, e.g. a signed download link; None when
        the account has no such user."""
        try:
            aid, uid = parse_id(account_id, "account"), parse_id(user_id, "user")
        except InvalidInput:
            return None
        with self.db.read() as s:
            row = s.execute(select(AccountTenant.tenant_id, User.aad_object_id)
                            .join(User, User.account_id == AccountTenant.account_id)
                            .where(User.id == uid, User.account_id == aid)
                            .order_by(AccountTenant.tenant_id).limit(1)).first()
        return Actor(row[0], row[1]) if row else None

    def authorize_audit_export(self, actor: Actor) -> CallerView:
        """An administrator downloading the audit log: re-checked now (NotAdmin, audited, if they
        no longer are one) and the download audited."""

        def fn(s: Session, caller: CallerView) -> CallerView:
            self._audit_ok(s, caller, "audit.exported", f"account:{caller.account_id}")
            return caller

        return self._command(actor, "audit.export", fn)

    def record_refusal(self, actor: Actor | None, action: str, error: DomainError, target: str | None = None) -> None:
        """For the chat layer: audit an attempt it refused itself (malformed card data, ...)."""
        self._refused(actor, action, error, target)

    # ------------------------------------------------------------------ delivery (outbox)

    def save_address(self, tenant_id: str, aad_object_id: str, address: dict) -> bool:
        """Remember where to reach a user proactively; False when the user is not known."""

        def work(s: Session) -> bool:
            uid = s.scalar(select(User.id).join(AccountTenant, AccountTenant.account_id == User.account_id)
                           .where(AccountTenant.tenant_id == (tenant_id or "").lower(),
                                  User.aad_object_id == aad_object_id))
            if uid is None:
                return False
            row = s.get(DeliveryAddress, uid)
            new = address
            known = (row.address or {}) if row is not None else {}
            if "locale" not in new:  # an activity without a locale (conversationUpdate): keep the known one
                new = {**new, "locale": known.get("locale") or "en-US"}
            if "timezone" not in new and known.get("timezone"):  # the same for the time zone (none: UTC)
                new = {**new, "timezone": known["timezone"]}
            if row is None:  # an upsert: the user's first activities may reach two instances at once
                stmt = conflict_insert(s, DeliveryAddress).values(user_id=uid, address=new, updated_at=self.now())
                s.execute(stmt.on_conflict_do_update(index_elements=[DeliveryAddress.user_id], set_={
                    "address": stmt.excluded.address, "updated_at": stmt.excluded.updated_at}))
            elif row.address != new:
                row.address = new
                row.updated_at = self.now()
            s.execute(update(User).where(User.id == uid, User.unreachable.is_(True)).values(unreachable=False))
            return True

        return self.db.write(work)

    def _posted_card(self, s: Session, account_id: int, subject: str, subject_id: str, message_ref: str,
                     address: dict) -> None:
        exists_ = s.scalar(select(PostedCard.id).where(PostedCard.subject == subject,
                                                       PostedCard.subject_id == str(subject_id),
                                                       PostedCard.message_ref == message_ref))
        if exists_ is None:
            s.add(PostedCard(account_id=account_id, subject=subject, subject_id=str(subject_id),
                             message_ref=message_ref, address=address, created_at=self.now()))

    def record_posted_card(self, account_id: int, subject: str, subject_id: str, message_ref: str,
                           address: dict) -> None:
        self.db.write(lambda s: self._posted_card(s, account_id, subject, subject_id, message_ref, address))

    def _message_cards(self, s: Session, actor: Actor, message_ref: str):
        tenant = actor.tenant_id.lower() if isinstance(actor, Actor) and actor.tenant_id else ""
        of_account = select(AccountTenant.account_id).where(AccountTenant.tenant_id == tenant)
        rows = s.execute(select(PostedCard.id, PostedCard.subject, PostedCard.subject_id, PostedCard.answering_until)
                         .where(PostedCard.message_ref == message_ref,
                                PostedCard.account_id == of_account.scalar_subquery())).all() if tenant else []
        return rows, of_account

    def message_answering(self, actor: Actor, message_ref: str | None) -> bool:
        """Its reader acts on a message: until the action has answered (:meth:`message_shows`), or
        :data:`ANSWERING` has passed (a process that died meanwhile), in-place updates of the cards
        that message shows wait, so that none lands after the answer that replaced it (Back on a
        quote closes the quote, whose update would otherwise overwrite the step shown by Back).
        Whether the message shows posted cards; one indexed read when it shows none (most actions)."""
        if not message_ref:
            return False
        with self.db.read() as s:
            rows, _ = self._message_cards(s, actor, message_ref)
        if rows:
            until = self.now() + ANSWERING
            self.db.write(lambda s: s.execute(update(PostedCard).where(PostedCard.id.in_([r.id for r in rows]))
                                              .values(answering_until=until)))
        return bool(rows)

    def message_shows(self, actor: Actor, message_ref: str, address: dict | None,
                      shown: Collection[tuple[str, str]] | None) -> None:
        """A message of the actor's account now shows ``shown`` ((subject, id) pairs) and nothing
        else: its reader acted on it and the answer replaced its card. The posted cards tying it
        to any other subject are dropped, so that a later in-place update of that subject (a
        quote closed or paid, a request decided) never replaces the step its reader has moved
        to; those shown are remembered (with ``address``) if they were not, and their updates
        wait no more. ``shown`` None: the action failed and its card stays as it was (nothing
        dropped). One indexed read when nothing changes."""
        if not message_ref:
            return
        with self.db.read() as s:
            rows, of_account = self._message_cards(s, actor, message_ref)
        wanted = {(r.subject, r.subject_id) for r in rows} if shown is None else {
            (subject, str(subject_id)) for subject, subject_id in shown}
        stale = [r.id for r in rows if (r.subject, r.subject_id) not in wanted]
        waiting = [r.id for r in rows if r.id not in stale and r.answering_until is not None]
        missing = wanted - {(r.subject, r.subject_id) for r in rows} if address else set()
        if not stale and not missing and not waiting:
            return

        def work(s: Session) -> None:
            if stale:
                s.execute(delete(PostedCard).where(PostedCard.id.in_(stale)))
            if waiting:
                s.execute(update(PostedCard).where(PostedCard.id.in_(waiting)).values(answering_until=None))
            account_id = s.scalar(of_account) if missing else None
            for subject, subject_id in sorted(missing) if account_id is not None else ():
                with contextlib.suppress(IntegrityError), s.begin_nested():  # (recorded at once elsewhere: fine)
                    self._posted_card(s, account_id, subject, subject_id, message_ref, address)
                    s.flush()

        self.db.write(work)

    def posted_card(self, posted_card_id: int) -> PostedCard | None:
        if not isinstance(posted_card_id, int) or isinstance(posted_card_id, bool):
            return None  # e.g. the "request paid" card item, which names no posted card
        with self.db.read() as s:
            return s.get(PostedCard, posted_card_id)

    def claim_outbox(self, worker: str, *, channels: tuple[str, ...] = ("chat", "card", "billing"), limit: int = 50,
                     lease: timedelta = timedelta(seconds=60), per_account: int | None = None,
                     max_accounts: int | None = None, skip_accounts: Collection[int] = ()) -> list[OutboxItem]:
        """Lease up to ``limit`` due messages to ``worker``. Several workers (even in several
        processes) share the outbox: rows are locked with SKIP LOCKED on PostgreSQL, and a
        lease that runs out (a crashed worker) makes a message due again.

        ``per_account`` (the notifier) claims by account, with affinity: at most that many
        messages per account (the oldest first, accounts taken in turn), and none of an account
        whose messages another worker holds (an unexpired lease on one of these channels), so
        that one worker at a time delivers for an account: its pacing then holds for the
        tenant's rate limit across processes, and a tenant has at most one message in flight.
        Accounts this worker holds already come first; ``max_accounts`` bounds the accounts of
        one claim and ``skip_accounts`` leaves some out (their queue is full). Such claims are
        serialised (an advisory lock on PostgreSQL; SQLite writes are serial anyway), so two
        workers never both take a free account."""
        now = self.now()

        def due():
            return (OutboxMessage.status == "pending", OutboxMessage.available_at <= now,
                    OutboxMessage.channel.in_(channels),
                    or_(OutboxMessage.locked_until.is_(None), OutboxMessage.locked_until <= now))

        def by_account(s: Session) -> list[int]:
            if not self.db.is_sqlite:
                s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": OUTBOX_CLAIM_LOCK})
            # live leases, and accounts another worker sent for a moment ago (outbox_done_many's
            # hold): ix_outbox_locked_until
            held = s.execute(select(OutboxMessage.account_id, OutboxMessage.locked_by).distinct().where(
                OutboxMessage.locked_until > now, OutboxMessage.channel.in_(channels))).all()
            mine = {a for a, w in held if w == worker}
            excluded = {a for a, w in held if w != worker} | set(skip_accounts)
            # accounts with messages waiting, those this worker holds first, then the longest waiting
            # (an index-only scan of ix_outbox_status_account_available; exact checks per account)
            waiting = s.execute(select(OutboxMessage.account_id, func.min(OutboxMessage.available_at))
                                .where(OutboxMessage.status == "pending", OutboxMessage.available_at <= now)
                                .group_by(OutboxMessage.account_id)).all()
            order = [a for a, _ in sorted(waiting, key=lambda r: (r[0] not in mine, r[1], r[0])) if a not in excluded]
            wanted = len(order) if max_accounts is None else max_accounts
            per: list[list[int]] = []
            for tried, account in enumerate(order):  # each an index range
                if len(per) >= wanted or tried >= 3 * wanted + len(mine):
                    break
                q = (select(OutboxMessage.id).where(OutboxMessage.status == "pending",
                                                    OutboxMessage.account_id == account, *due()[1:])
                     .order_by(OutboxMessage.available_at, OutboxMessage.id).limit(per_account))
                if not self.db.is_sqlite:
                    q = q.with_for_update(skip_locked=True)
                ids = list(s.scalars(q))
                if ids:
                    per.append(ids)
            taken: list[int] = []  # accounts in turn, up to the limit
            for rank in range(per_account):
                taken.extend(ids[rank] for ids in per if rank < len(ids))
            return taken[:limit]

        def work(s: Session) -> list[OutboxItem]:
            if per_account is not None:
                ids = by_account(s)
            else:
                q = select(OutboxMessage.id).where(*due()).order_by(OutboxMessage.available_at,
                                                                    OutboxMessage.id).limit(limit)
                ids = list(s.scalars(q if self.db.is_sqlite else q.with_for_update(skip_locked=True)))
            if not ids:
                return []
            s.execute(update(OutboxMessage).where(OutboxMessage.id.in_(ids)).values(
                locked_by=worker, locked_until=now + lease, attempts=OutboxMessage.attempts + 1),
                execution_options={"synchronize_session": False})
            rows = s.execute(select(OutboxMessage.id, OutboxMessage.account_id, OutboxMessage.channel,
                                    OutboxMessage.kind, OutboxMessage.user_id, OutboxMessage.payload,
                                    OutboxMessage.attempts).where(OutboxMessage.id.in_(ids))
                             .order_by(OutboxMessage.available_at, OutboxMessage.id)).all()
            user_ids = {r.user_id for r in rows if r.user_id}
            info = {}
            for chunk in _chunks(sorted(user_ids)):
                for uid, aad, tenant, address in s.execute(
                        select(User.id, User.aad_object_id, AccountTenant.tenant_id, DeliveryAddress.address)
                        .join(AccountTenant, AccountTenant.account_id == User.account_id)
                        .outerjoin(DeliveryAddress, DeliveryAddress.user_id == User.id)
                        .where(User.id.in_(chunk))):
                    info.setdefault(uid, (aad, tenant, address))
            out = []
            for r in rows:
                aad, tenant, address = info.get(r.user_id, (None, None, None))
                out.append(OutboxItem(id=r.id, account_id=r.account_id, channel=r.channel, kind=r.kind,
                                      user_id=r.user_id, payload=r.payload, attempts=r.attempts, address=address,
                                      tenant_id=tenant, aad_object_id=aad))
            return out

        return self.db.write(work)

    def outbox_extend(self, message_ids: Collection[int], worker: str, lease: timedelta) -> set[int]:
        """Renew ``worker``'s lease on these messages for ``lease`` from now; the ids it still
        holds (pending and leased to it: a message another worker took once the lease ran out
        is not its own any more, and must not be sent by it)."""
        now, ids = self.now(), sorted(set(message_ids))

        def work(s: Session) -> set[int]:
            held: set[int] = set()
            for chunk in _chunks(ids):
                held.update(s.scalars(update(OutboxMessage).where(
                    OutboxMessage.id.in_(chunk), OutboxMessage.locked_by == worker,
                    OutboxMessage.status == "pending").values(locked_until=now + lease)
                    .returning(OutboxMessage.id), execution_options={"synchronize_session": False}))
            return held

        return self.db.write(work) if ids else set()

    def outbox_release(self, message_ids: Collection[int], worker: str, *, after: timedelta | None = None) -> None:
        """Give back messages leased but not attempted (a worker stopping; a card its reader is
        acting on): due again at once, or ``after`` that, for any worker, and the claim does not
        count as an attempt."""
        ids = sorted(set(message_ids))
        due = {"available_at": self.now() + after} if after is not None else {}

        def work(s: Session) -> None:
            for chunk in _chunks(ids):
                s.execute(update(OutboxMessage).where(
                    OutboxMessage.id.in_(chunk), OutboxMessage.locked_by == worker,
                    OutboxMessage.status == "pending").values(
                    locked_until=None, attempts=func.max(OutboxMessage.attempts - 1, 0)
                    if self.db.is_sqlite else func.greatest(OutboxMessage.attempts - 1, 0), **due),
                    execution_options={"synchronize_session": False})

        if ids:
            self.db.write(work)

    def outbox_done(self, message_id: int, worker: str) -> None:
        self._outbox_update(message_id, worker, status="sent", sent_at=self.now(), locked_until=None)

    def outbox_done_many(self, message_ids: Collection[int], worker: str, *, hold: timedelta | None = None) -> None:
        """:meth:`outbox_done` for several messages in one transaction (the notifier's lanes
        record their sends together: one commit instead of one per message). ``hold`` keeps the
        account with this worker that long after its last send (``locked_until`` of the sent
        message: claims by account skip it for other workers), so that an account changes
        hands only once its tenant's rate window has passed."""
        ids, now = sorted(set(message_ids)), self.now()
        until = now + hold if hold else None

        def work(s: Session) -> None:
            for chunk in _chunks(ids):
                s.execute(update(OutboxMessage).where(
                    OutboxMessage.id.in_(chunk), OutboxMessage.locked_by == worker,
                    OutboxMessage.status == "pending").values(status="sent", sent_at=now, locked_until=until),
                    execution_options={"synchronize_session": False})

        if ids:
            self.db.write(work)

    def outbox_retry(self, message_id: int, worker: str, delay: timedelta, error: str) -> None:
        def work(s: Session):
            m = s.get(OutboxMessage, message_id)
            if m is None or m.locked_by != worker or m.status != "pending":
                return
            m.last_error = error[:500]
            m.locked_until = None
            if m.attempts >= MAX_OUTBOX_ATTEMPTS:
                m.status = "failed"
            else:
                m.available_at = self.now() + delay

        self.db.write(work)

    def outbox_failed(self, message_id: int, worker: str, error: str) -> None:
        """A delivery that cannot succeed (e.g. a request the Bot Connector refuses as
        malformed): failed at once, the error kept, not retried."""
        self._outbox_update(message_id, worker, status="failed", last_error=error[:500], locked_until=None)

    def outbox_unreachable(self, message_id: int, worker: str, error: str) -> None:
        """The user blocked the bot: keep the record, stop retrying, mark the user."""

        def work(s: Session):
            m = s.get(OutboxMessage, message_id)
            if m is None or m.locked_by != worker:
                return
            m.status, m.last_error, m.locked_until = "unreachable", error[:500], None
            if m.user_id:
                s.execute(update(User).where(User.id == m.user_id).values(unreachable=True))

        self.db.write(work)

    def _outbox_update(self, message_id: int, worker: str, **values) -> None:
        self.db.write(lambda s: s.execute(update(OutboxMessage).where(
            OutboxMessage.id == message_id, OutboxMessage.locked_by == worker,
            OutboxMessage.status == "pending").values(**values)))

    def outbox_counts(self) -> dict[str, int]:
        with self.db.read() as s:
            return dict(s.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all())

    def subscription_sync(self, payload: dict) -> SubscriptionSync | None:
        """The provider-side state a billing outbox message asks for, read now (None: the
        subscription is no longer linked to the provider)."""
        with self.db.read() as s:
            sub = s.get(Subscription, payload.get("subscription_id"))
            if sub is None or not sub.external_ref:
                return None
            items = tuple(self._renewal_items(s, sub))
        digest = hashlib.sha256(repr([(i.plan_code, i.quantity, i.unit_amount) for i in items]).encode()).hexdigest()
        return SubscriptionSync(subscription_ref=sub.external_ref, items=items,
                                idempotency_key=f"sync-{sub.id}-{digest[:24]}")

    def carry_request(self, payload: dict) -> CarryForward | None:
        """What a ``carry_forward`` billing message asks the provider for, read now (None: nothing
        to carry, or the account has no customer at the provider any more: logged)."""
        with self.db.read() as s:
            quote = s.get(Quote, str(payload.get("quote_id")))
            if quote is None or not quote.carried:
                return None
            account = s.get(Account, quote.account_id)
            view = self._quote_view(s, quote)
        if not account.billing_ref:
            log.warning("quote %s: %d carried to the next invoice, but account %s has no billing profile",
                        quote.id, quote.carried, account.id)
            return None
        return CarryForward(customer_ref=account.billing_ref, amount=quote.carried, currency=quote.currency,
                            description=f"License Desk: {self._billed_as(view)}, prorated (under the minimum card "
                                        "payment)",
                            quote_id=quote.id, idempotency_key=_attempt_key(quote.id, "carry", quote.carry_attempt))

    def carry_answered(self, carry: CarryForward) -> None:
        """The provider gave a definite (error) answer to ``carry``: it replays it to that key, so
        the next attempt takes a new one (unless another process already moved on)."""
        with self.db.read() as s:
            tried = s.scalar(select(Quote.carry_attempt).where(Quote.id == carry.quote_id))
        if tried is not None and _attempt_key(carry.quote_id, "carry", tried) == carry.idempotency_key:
            self._next_attempt(carry.quote_id, Quote.carry_attempt, tried)

    # ------------------------------------------------------------------ for the chat layer

    def plan_name(self, code: str | None) -> str:
        return self._plan_name(code) or ""

    def directory_rows(self, actor: Actor, user_ids: list[int]) -> list[UserRow]:
        """Names and e-mails of the given users of the caller's account (unknown ids dropped)."""

        def fn(s: Session, caller: CallerView):
            ids = list(user_ids)[:MAX_PAGE_SIZE]
            rows = s.execute(select(User.id, User.name, User.email)
                             .where(User.account_id == caller.account_id, User.id.in_(ids))).all()
            by_id = {r[0]: UserRow(r[0], r[1], r[2]) for r in rows}
            return [by_id[i] for i in ids if i in by_id]

        return self._query(actor, "directory.rows", fn, admin=False)

    def pool_rows(self, actor: Actor, pool_id, user_ids: list[int]) -> list[UserRow]:
        """The given users who hold a seat of this pool (others dropped), each with the downgrade
        scheduled for them, in the pool's order."""

        def fn(s: Session, caller: CallerView):
            pool = self._pool(s, caller, pool_id)
            ids = parse_ids(list(user_ids)) if user_ids else []
            rows = []
            for chunk in _chunks(ids):
                rows += s.execute(select(User.id, User.name, User.email, Seat.downgrade_to, Seat.sort_key)
                                  .join(Seat, Seat.user_id == User.id)
                                  .where(Seat.pool_id == pool.id, User.id.in_(chunk))).all()
            rows.sort(key=lambda r: (r[4], r[0]))
            return [UserRow(id=r[0], name=r[1], email=r[2], plan_code=pool.plan_code, downgrade_to=r[3])
                    for r in rows]

        return self._query(actor, "pool.rows", fn, target=f"pool:{pool_id}")

    def any_address(self, account_id: int) -> dict | None:
        """Some stored address in the account (its service URL serves the whole tenant)."""
        with self.db.read() as s:
            return s.scalar(select(DeliveryAddress.address).join(User, User.id == DeliveryAddress.user_id)
                            .where(User.account_id == account_id).order_by(DeliveryAddress.updated_at.desc())
                            .limit(1))

    def user_address(self, account_id: int, aad_object_id: str | None) -> dict | None:
        """The stored address of a user of the account, as it is now (None: not a user of the
        account, or never reached): with the locale and time zone they told last."""
        if not isinstance(aad_object_id, str) or not aad_object_id:
            return None
        with self.db.read() as s:
            return s.scalar(select(DeliveryAddress.address).join(User, User.id == DeliveryAddress.user_id)
                            .where(User.account_id == account_id, User.aad_object_id == aad_object_id[:64]))

    def quote_snapshot(self, quote_id: str) -> QuoteView | None:
        """A quote as it is now, for the system (e.g. to update a card shown earlier)."""
        with self.db.read() as s:
            quote = s.get(Quote, quote_id)
            return self._quote_view(s, quote) if quote else None

    def request_snapshot(self, request_id) -> RequestView | None:
        """An upgrade request as it is now, for the system (notifications, card updates)."""
        try:
            rid = parse_id(request_id, "request")
        except InvalidInput:
            return None
        with self.db.read() as s:
            req = s.get(UpgradeRequest, rid)
            return self._request_view(s, req) if req else None

    def account_admin_names(self, actor: Actor, limit: int = 5) -> list[str]:
        """Whom to ask: the administrators of the account bound to the actor's tenant (also for
        someone of that tenant who is not a user of the account yet)."""
        tenant = actor.tenant_id.lower() if isinstance(actor, Actor) and actor.tenant_id else ""
        if not tenant:
            return []
        with self.db.read() as s:
            return list(s.scalars(select(User.name).join(AccountTenant, AccountTenant.account_id == User.account_id)
                                  .where(AccountTenant.tenant_id == tenant, User.role == "admin")
                                  .order_by(User.sort_key, User.id).limit(max(1, min(limit, 20)))))

    def account_admin_chat_ids(self, account_id: int, limit: int = 60) -> list[str]:
        """The ids the chat layer knows the account's administrators by (the ``user.id`` of their
        stored delivery addresses), most recently seen first, at most ``limit``: whom a card that
        only administrators may act on is kept live for."""
        with self.db.read() as s:
            rows = s.scalars(select(DeliveryAddress.address).join(User, User.id == DeliveryAddress.user_id)
                             .where(User.account_id == account_id, User.role == "admin")
                             .order_by(DeliveryAddress.updated_at.desc(), User.id))
            users = [a.get("user") for a in rows if isinstance(a, dict) and isinstance(a.get("user"), dict)]
        # (an address made when the chat was created for them names them by directory id only)
        ids = [u.get("id") for u in users if u.get("id") != u.get("aadObjectId")]
        return list(dict.fromkeys(i for i in ids if isinstance(i, str) and i))[:max(0, limit)]

    def posted_card_shows(self, subject: str, subject_id: str, message_ref: str) -> bool:
        """Whether a message was recorded as showing that subject's card (e.g. a request card
        that became the quote card when its admin approved it)."""
        with self.db.read() as s:
            return s.scalar(select(PostedCard.id).where(
                PostedCard.subject == subject, PostedCard.subject_id == str(subject_id),
                PostedCard.message_ref == message_ref).limit(1)) is not None


def _utc(at: datetime) -> datetime:
    """An instant as aware UTC (a naive one, as SQLite gives it back, is UTC)."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _attempt_key(quote_id: str, what: str, attempt: int) -> str:
    """The idempotency key of a quote's ``what`` ("link", "carry") request, attempt ``attempt``
    (the first keeps the key used before attempts were numbered)."""
    return f"quote-{quote_id}-{what}" + (f"-{attempt}" if attempt else "")


def _chunks(ids: list, size: int = 500):
    for i in range(0, len(ids), size):
        yield ids[i:i + size]


def _csv_safe(value: str | None) -> str:
    """Neutralise spreadsheet formulas in exported text (OWASP "CSV injection": a cell beginning with
    = + - @, a tab or a line break; spreadsheets also skip leading blanks, so " =1+1" counts too):
    such a cell gets a leading apostrophe and is read as text."""
    value = value or ""
    risky = value[:1] in ("\t", "\r", "\n") or value.lstrip()[:1] in ("=", "+", "-", "@")
    return "'" + value if risky else value


def _stored_message(r: AuditEvent) -> str | None:
    """An audit row's sentence: the Message rebuilt from the template and params stored with it
    (so that it can be said in its reader's language), else the stored English text (older rows)."""
    stored = r.detail.get("message") if isinstance(r.detail, dict) else None
    return (Message.from_json(stored) if stored else None) or r.message


def _audit_row(r: AuditEvent) -> AuditRow:
    return AuditRow(id=r.id, created_at=r.created_at, actor=r.actor, tenant_id=r.tenant_id, action=r.action,
                    outcome=r.outcome, target=r.target, message=_stored_message(r))
