"""Quotes: pricing an upgrade or a cart, holding the seats an upgrade moves, and the quote's
own closing steps (cancel, confirm when nothing is due, the expiry sweep)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from fractions import Fraction
from typing import TYPE_CHECKING

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from core import pricing
from core.catalog import INTERVALS, Plan
from core.errors import HeldByQuote, InvalidInput, Message, NotAnUpgrade, NotFound, WrongFamily
from core.kinds import AuditAction, QuoteKind, QuoteStatus
from core.models import Account, Quote, QuoteHold, Subscription
from core.payments import PaymentGateway
from core.periods import add_intervals, period_containing
from core.services.periods import current, discount_at, rate_at
from core.services.plans import PlanViews
from core.services.pools import load_pool, seats_of
from core.services.quote_lifecycle import (
    check_not_held,
    close_quote,
    load_quote,
    quote_view,
    require_open,
)
from core.services.shared import MAX_CART_LINES, chunks, execute_core, table_of
from core.text import parse_ids, parse_quantity
from core.views import SYSTEM, Actor, CallerView, PlanView, QuoteView

if TYPE_CHECKING:
    from core.services.settlement import Settlement
    from core.unit_of_work import Unit, Units

_HOLD_INSERT = insert(table_of(QuoteHold))


class Quotes:
    def __init__(self, units: Units, plans: PlanViews, settlement: Settlement, gateway: PaymentGateway | None,
                 quote_ttl: timedelta):
        self.units = units
        self.plans = plans
        self.settlement = settlement
        self.gateway = gateway
        self.quote_ttl = quote_ttl

    def view(self, u: Unit, quote: Quote, **known) -> QuoteView:
        """``known``: what :func:`quote_view` need not read again (payment, creator, users)."""
        return quote_view(u, self.plans, quote, **known)

    def minimum_charge(self, currency: str) -> int:
        """The smallest amount the payment provider collects through a link (1: any amount)."""
        return self.gateway.minimum_charge(currency) if self.gateway is not None else 1

    # ------------------------------------------------------------------ holds

    def _hold(self, u: Unit, quote: Quote, seat_ids: list[int], now: datetime) -> None:
        s = u.s
        check_not_held(u, seat_ids, now, by=quote.created_by)
        for chunk in chunks(seat_ids):
            s.execute(delete(QuoteHold).where(QuoteHold.seat_id.in_(chunk)))  # stale holds only (checked above)
        try:
            with s.begin_nested():  # (rows of columns in one statement: no ORM objects to flush)
                execute_core(s, _HOLD_INSERT, [{"seat_id": sid, "quote_id": quote.id, "expires_at": quote.expires_at}
                                              for sid in seat_ids])
        except IntegrityError:  # another transaction held them first (PostgreSQL, concurrent quotes)
            check_not_held(u, seat_ids, now, by=quote.created_by)
            raise HeldByQuote(None, now + self.quote_ttl, "") from None

    # ------------------------------------------------------------------ pricing

    @staticmethod
    def _new_quote(caller: CallerView, kind: str, now: datetime, expires_at: datetime, **kw) -> Quote:
        return Quote(id=uuid.uuid4().hex, account_id=caller.account_id, kind=kind, status=QuoteStatus.OPEN,
                     created_by=caller.user_id, created_at=now, priced_at=now, expires_at=expires_at,
                     currency=caller.currency, **kw)

    def _carry_split(self, u: Unit, caller: CallerView, owed: int) -> tuple[int, int]:
        """(due now, carried) for an amount owed now. Below the provider's minimum charge it cannot
        be paid by card: it is carried to the account's next invoice instead (as billing providers
        do with an invoice under their minimum), where the account has a customer at the provider; else it
        stays due now, and the payment link says why it cannot be made."""
        if not 0 < owed < self.minimum_charge(caller.currency):
            return owed, 0
        if not u.s.scalar(select(Account.billing_ref).where(Account.id == caller.account_id)):
            return owed, 0
        return 0, owed

    def _price_upgrade(self, u: Unit, caller: CallerView, pool, user_ids: list[int], to_plan, now: datetime):
        s, catalog = u.s, u.catalog
        sub = current(u, s.get_one(Subscription, pool.subscription_id), now)  # before reading the seats
        seats = seats_of(u, pool, user_ids)
        plan_a = catalog.plan(pool.plan_code)
        if not isinstance(to_plan, str) or not to_plan:
            raise InvalidInput(Message("Choose the plan to upgrade to."))
        plan_b = catalog.plan(to_plan)
        if plan_b.family != plan_a.family:
            raise WrongFamily(Message("{plan} is not in the same family as {current}; an upgrade stays within the "
                                      "{family} family.", plan=plan_b.name, current=plan_a.name,
                                      family=catalog.families[plan_a.family]))
        if plan_b.rank <= plan_a.rank:
            raise NotAnUpgrade(Message("{plan} is not above {current}: an upgrade must go to a higher tier.",
                                       plan=plan_b.name, current=plan_a.name))
        plan_b = catalog.priced_plan(plan_b.code, sub.interval, caller.currency)
        f = pricing.remaining_fraction(sub.period_start, sub.period_end, now)
        disc = discount_at(s, caller.account_id, now)
        d = pricing.discount_rate(disc.percent_off if disc else None)
        d_next = rate_at(s, caller.account_id, sub.period_end)
        n = len(seats)
        lines = pricing.upgrade_lines(n, plan_a.code, plan_a.price(sub.interval), plan_b.code,
                                      plan_b.price(sub.interval), sub.interval, f, d)
        renewal = pricing.renewal_amount(n, plan_b.price(sub.interval), d_next)
        line_dicts = [dict(line.to_dict(), period_start=sub.period_start.isoformat(),
                           period_end=sub.period_end.isoformat(), new_period=False,
                           renewal_amount=renewal if line.kind == "charge" else 0) for line in lines]
        return seats, sub, plan_a, plan_b, lines, line_dicts, renewal, disc

    def upgrade_options(self, actor: Actor, pool_id, user_ids) -> list[PlanView]:
        """Only plans of the pool's family ranked higher than every selected user's plan."""

        def fn(u: Unit, caller: CallerView):
            pool = load_pool(u, caller, pool_id)
            seats_of(u, pool, parse_ids(user_ids))
            plan = u.catalog.plan(pool.plan_code)
            return [self.plans.plan_view(p) for p in u.catalog.higher_plans(plan) if p.currency == caller.currency]

        return self.units.query(actor, AuditAction.UPGRADE_OPTIONS, fn, target=f"pool:{pool_id}")

    def quote_upgrade(self, actor: Actor, pool_id, user_ids, to_plan, *, request_id: int | None = None,
                      quote_id: str | None = None) -> QuoteView:
        """Price moving the selected users of one pool to a higher plan, and hold their seats.
        ``quote_id`` (chosen when the tiers card was shown) makes it idempotent, as for
        :meth:`quote_purchase`: a double click gets the quote the first click created."""

        def fn(u: Unit, caller: CallerView):
            return self.upgrade_in(u, caller, pool_id, parse_ids(user_ids), to_plan, request_id, quote_id)

        try:
            return self.units.command(actor, AuditAction.QUOTE_UPGRADE, fn, target=f"pool:{pool_id}")
        except IntegrityError:  # a concurrent click with the same key created the quote first
            if quote_id is None:
                raise
            return self.quote(actor, quote_id)

    def _keyed_quote(self, u: Unit, caller: CallerView, quote_id: str | None, kind: str) -> QuoteView | None:
        """The quote already created with a client-chosen key (32 hex digits), if any."""
        if quote_id is None:
            return None
        if not isinstance(quote_id, str) or len(quote_id) != 32 or quote_id.strip("0123456789abcdef"):
            if kind == QuoteKind.UPGRADE:
                raise InvalidInput(Message("This card is not valid. Start again from the license pools."))
            raise InvalidInput(Message("This cart card is not valid. Start again from “buy”."))
        existing = u.s.get(Quote, quote_id)
        if existing is None:
            return None
        if existing.account_id != caller.account_id or existing.kind != kind:
            raise NotFound(Message("That quote does not exist in your account."))
        return self.view(u, existing)

    def upgrade_in(self, u: Unit, caller: CallerView, pool_id, user_ids: list[int], to_plan,
                   request_id: int | None, quote_id: str | None = None) -> QuoteView:
        """:meth:`quote_upgrade` in the unit's transaction (an approved request's quote)."""
        s, now = u.s, u.now
        pool = load_pool(u, caller, pool_id, lock=True)
        existing = self._keyed_quote(u, caller, quote_id, QuoteKind.UPGRADE)  # (read under the pool's lock)
        if existing is not None:
            return existing
        seats, sub, plan_a, plan_b, lines, line_dicts, renewal, disc = self._price_upgrade(
            u, caller, pool, user_ids, to_plan, now)
        totals = pricing.totals(lines)
        due_now, carried = self._carry_split(u, caller, totals.due_now)
        quote = self._new_quote(
            caller, QuoteKind.UPGRADE, now, min(now + self.quote_ttl, sub.period_end), pool_id=pool.id,
            from_plan=plan_a.code, to_plan=plan_b.code, user_ids=[seat.user_id for seat in seats],
            lines=line_dicts, discount_label=disc.label if disc else None,
            discount_percent=disc.percent_off if disc else None, gross=totals.gross, discount=totals.discount,
            due_now=due_now, carried=carried, renewal_amount=renewal, renewal_date=sub.period_end,
            request_id=request_id)
        if quote_id:
            quote.id = quote_id
        s.add(quote)
        s.flush()
        self._hold(u, quote, [seat.id for seat in seats], now)
        u.audit_ok(caller, AuditAction.QUOTE_UPGRADE, f"quote:{quote.id}",
                   {"pool": pool.id, "users": len(seats), "from": plan_a.code, "to": plan_b.code,
                    "due_now": due_now, "carried": carried, "renewal": renewal})
        return self.view(u, quote, payment=None, creator=caller)  # (new: no payment link yet)

    def quote_purchase(self, actor: Actor, lines, *, quote_id: str | None = None) -> QuoteView:
        """Price a cart: ``lines`` is a list of {plan, interval, quantity}. ``quote_id`` (32 hex
        digits, chosen when the cart was shown) makes a checkout idempotent: a repeated one
        (double click, replay) returns the quote created with that id instead of a second quote."""

        def fn(u: Unit, caller: CallerView):
            existing = self._keyed_quote(u, caller, quote_id, QuoteKind.PURCHASE)
            if existing is not None:
                return existing
            return self._quote_purchase(u, caller, lines, quote_id=quote_id)

        try:
            return self.units.command(actor, AuditAction.QUOTE_PURCHASE, fn)
        except IntegrityError:  # a concurrent checkout of the same cart created the quote first
            if quote_id is None:
                raise
            return self.quote(actor, quote_id)

    @staticmethod
    def _parse_cart(u: Unit, caller: CallerView, lines) -> list[tuple[Plan, str, int]]:
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
            plan = u.catalog.priced_plan(code, interval, caller.currency)
            qty = parse_quantity(line.get("quantity"))
            merged[(plan.code, interval)] = parse_quantity(merged.get((plan.code, interval), 0) + qty)
        return [(u.catalog.plan(code), interval, qty) for (code, interval), qty in merged.items()]

    def cart_preview(self, actor: Actor, lines) -> QuoteView:
        """Price a cart without creating a quote (the cart card shows it before checkout)."""

        def fn(u: Unit, caller: CallerView):
            return self._quote_purchase(u, caller, lines, persist=False)

        return self.units.query(actor, AuditAction.CART_PREVIEW, fn)

    def _quote_purchase(self, u: Unit, caller: CallerView, lines, *, persist: bool = True,
                        quote_id: str | None = None) -> QuoteView:
        s, now = u.s, u.now
        cart = self._parse_cart(u, caller, lines)
        d = discount_at(s, caller.account_id, now)
        rate = pricing.discount_rate(d.percent_off if d else None)
        priced, line_dicts = [], []
        renewal_total, renewal_date, expires = 0, None, now + self.quote_ttl
        for plan, interval, qty in cart:
            sub = s.scalars(select(Subscription).where(Subscription.account_id == caller.account_id,
                                                       Subscription.interval == interval)).first()
            if sub is not None:
                if persist:
                    sub = current(u, sub, now)
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
            renewal = pricing.renewal_amount(qty, plan.price(interval), rate_at(s, caller.account_id, end))
            priced.append(line)
            line_dicts.append(dict(line.to_dict(), period_start=start.isoformat(), period_end=end.isoformat(),
                                   new_period=new, renewal_amount=renewal))
            if renewal_date is None or end < renewal_date:  # the quote's renewal: the next one, and only its lines
                renewal_total, renewal_date = renewal, end
            elif end == renewal_date:
                renewal_total += renewal
        totals = pricing.totals(priced)
        due_now, carried = self._carry_split(u, caller, totals.due_now)
        quote = self._new_quote(caller, QuoteKind.PURCHASE, now, expires, lines=line_dicts, user_ids=[],
                                discount_label=d.label if d else None, discount_percent=d.percent_off if d else None,
                                gross=totals.gross, discount=totals.discount, due_now=due_now, carried=carried,
                                renewal_amount=renewal_total, renewal_date=renewal_date)
        if quote_id:
            quote.id = quote_id
        if persist:
            s.add(quote)
            s.flush()
            u.audit_ok(caller, AuditAction.QUOTE_PURCHASE, f"quote:{quote.id}",
                       {"lines": [[p.code, i, q] for p, i, q in cart], "due_now": due_now, "carried": carried})
        return self.view(u, quote)

    # ------------------------------------------------------------------ one quote

    def quote(self, actor: Actor, quote_id) -> QuoteView:
        return self.units.query(actor, AuditAction.QUOTE_VIEW, lambda u, c: self.view(u, load_quote(u, c, quote_id)),
                                target=f"quote:{quote_id}")

    def quote_snapshot(self, quote_id: str) -> QuoteView | None:
        """A quote as it is now, for the system (e.g. to update a card shown earlier)."""
        with self.units.system_read() as u:
            quote = u.s.get(Quote, quote_id)
            return self.view(u, quote) if quote else None

    def cancel_quote(self, actor: Actor, quote_id) -> QuoteView:
        def fn(u: Unit, caller: CallerView):
            quote = load_quote(u, caller, quote_id, lock=True)
            require_open(u, quote)
            close_quote(u, quote, QuoteStatus.CANCELLED, caller.user_id)
            u.audit_ok(caller, AuditAction.QUOTE_CANCELLED, f"quote:{quote.id}")
            return self.view(u, quote)

        return self.units.command(actor, AuditAction.QUOTE_CANCEL, fn, target=f"quote:{quote_id}")

    def confirm_without_payment(self, actor: Actor, quote_id) -> QuoteView:
        """A quote with nothing due (e.g. a 100 % discount) is applied without a payment."""

        def fn(u: Unit, caller: CallerView):
            quote = load_quote(u, caller, quote_id, lock=True)
            require_open(u, quote)
            if quote.due_now > 0:
                raise InvalidInput(Message("This quote has an amount due: pay it through the payment link."))
            self.settlement.apply(u, quote, "none", None)
            u.audit_ok(caller, AuditAction.QUOTE_CONFIRMED, f"quote:{quote.id}")
            return self.view(u, quote)

        return self.units.command(actor, AuditAction.QUOTE_CONFIRM, fn, target=f"quote:{quote_id}")

    def expire_quotes(self, limit: int = 200) -> int:
        """The expiry sweep: close the open quotes whose time ran out (status expired, seats freed,
        payment link closed at the provider, cards updated). Returns how many were closed."""

        def work(u: Unit) -> int:
            due = u.s.scalars(select(Quote).where(Quote.status == QuoteStatus.OPEN, Quote.expires_at <= u.now)
                              .order_by(Quote.expires_at).limit(limit).with_for_update(skip_locked=True)).all()
            for quote in due:
                close_quote(u, quote, QuoteStatus.EXPIRED, None)
                u.audit(account_id=quote.account_id, tenant_id=None, actor_id=None, actor=SYSTEM,
                        action=AuditAction.QUOTE_EXPIRED, target=f"quote:{quote.id}")
            return len(due)

        return self.units.system_write(work)
