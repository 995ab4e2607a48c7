"""Settlement: a payment provider's events, applied once each; a paid quote moves or adds seats."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from core.db import conflict_insert
from core.errors import HeldByQuote, Message
from core.kinds import AuditAction, OutboxKind, Outcome, PaymentEventKind, PaymentStatus, QuoteKind, QuoteStatus
from core.models import Payment, PaymentEventRecord, Pool, Quote, Seat, Subscription
from core.payments import PaymentEvent
from core.periods import period_bounds
from core.services.periods import current, get_or_create_pool, queue_billing_sync
from core.services.pools import assigned_count
from core.services.quote_lifecycle import check_not_held, close_quote, mark_link_closed, queue_quote_cards
from core.services.shared import chunks, utc
from core.views import EventResult

if TYPE_CHECKING:
    from core.unit_of_work import Unit, Units

REFUND_CLOSED = Message("The payment arrived after the quote was closed (cancelled or expired); it was not applied.")
REFUND_OTHER_PERIOD = Message("The payment arrived after the billing period the quote was priced in had ended; it "
                              "was not applied. Prepare a new quote for the current period.")


# a payment link that died unpaid -> its audit action
_LAPSED = {PaymentEventKind.FAILED: AuditAction.PAYMENT_FAILED, PaymentEventKind.EXPIRED: AuditAction.PAYMENT_EXPIRED}

class Settlement:
    def __init__(self, units: Units):
        self.units = units

    def handle_payment_event(self, event: PaymentEvent) -> EventResult:
        """A provider's authenticated event: processed once per event id, in one transaction."""

        def work(u: Unit) -> EventResult:
            s = u.s
            try:
                with s.begin_nested():
                    s.add(PaymentEventRecord(provider=event.provider, event_id=event.event_id, kind=event.kind,
                                             quote_id=(event.quote_id or "")[:32] or None, result="processing",
                                             received_at=u.now))
                    s.flush()
            except IntegrityError:
                return EventResult("duplicate", event.quote_id)
            record = s.get_one(PaymentEventRecord, (event.provider, event.event_id))
            result = self._on_event(u, event)
            record.result = result.result
            return result

        return self.units.system_write(work)

    def _on_event(self, u: Unit, event: PaymentEvent) -> EventResult:
        s = u.s
        if event.kind == PaymentEventKind.IGNORED or not event.quote_id:
            return EventResult("ignored", event.quote_id)
        quote = s.scalars(select(Quote).where(Quote.id == event.quote_id).with_for_update()).first()
        if quote is None:
            u.audit(account_id=None, tenant_id=None, actor_id=None, actor=event.provider,
                    action=AuditAction.PAYMENT_UNKNOWN_QUOTE, outcome=Outcome.REFUSED,
                    target=f"quote:{event.quote_id}",
                    message="A payment event named a quote that does not exist.",
                    detail={"event": event.event_id, "kind": event.kind})
            return EventResult("unknown_quote", event.quote_id)
        payment = s.scalars(select(Payment).where(Payment.quote_id == quote.id).with_for_update()).first()
        if event.kind in (PaymentEventKind.FAILED, PaymentEventKind.EXPIRED):
            if (payment and payment.status == PaymentStatus.CLOSING and event.kind == PaymentEventKind.EXPIRED
                    and event.external_id in (None, payment.external_id)):
                mark_link_closed(u, payment)  # the provider confirms the link we asked it to close
            elif (payment and payment.status == PaymentStatus.PENDING
                  and event.external_id in (None, payment.external_id)):
                # That link is dead (an expired link cannot be paid; a failed asynchronous
                # payment completed it unpaid), and its key would replay it: the quote, while open,
                # gets a new link under the next attempt's key, and its cards say what happened.
                s.delete(payment)
                quote.payment_lapsed = event.kind
                quote.link_attempt += 1
                quote.link_attempt_at = u.now
                queue_quote_cards(u, quote, f"lapsed:{event.event_id}")
            u.audit(account_id=quote.account_id, tenant_id=None, actor_id=None, actor=event.provider,
                    action=_LAPSED[PaymentEventKind(event.kind)], target=f"quote:{quote.id}",
                    detail={"event": event.event_id})
            return EventResult(event.kind, quote.id)
        # kind == "paid"
        if payment is None or payment.provider != event.provider or (
                event.external_id and payment.external_id != event.external_id):
            return self._refund_needed(u, quote, event, "The payment does not match this quote's payment link.")
        if event.amount is not None and (event.amount != quote.due_now
                                         or (event.currency or "").upper() != quote.currency):
            return self._refund_needed(u, quote, event, "The amount paid differs from the quoted amount.")
        payment.status = PaymentStatus.PAID
        payment.updated_at = u.now
        payment.payer_email = event.payer or payment.payer_email
        if quote.status == QuoteStatus.PAID:
            return EventResult("already_paid", quote.id)
        if quote.status == QuoteStatus.REFUND_NEEDED:
            return EventResult("refund_needed", quote.id)
        problem = self._outside_its_period(u, quote)  # (first: the reason that says to quote again)
        if problem is None and (quote.status != QuoteStatus.OPEN or quote.expires_at <= u.now):  # cancelled, expired
            problem = str(REFUND_CLOSED)
        problem = problem or self._still_applicable(u, quote)
        if problem:
            return self._refund_needed(u, quote, event, problem)
        self.apply(u, quote, event.provider, event.event_id)
        return EventResult("settled", quote.id)

    def _refund_needed(self, u: Unit, quote: Quote, event: PaymentEvent, why: str) -> EventResult:
        if quote.status == QuoteStatus.PAID:
            # a second, different payment for a quote already settled: money to give back
            why = "This quote was already paid; a second payment arrived. " + why
        else:
            close_quote(u, quote, QuoteStatus.REFUND_NEEDED, None, note=why)
        u.audit(account_id=quote.account_id, tenant_id=None, actor_id=None, actor=event.provider,
                action=AuditAction.PAYMENT_REFUND_NEEDED, outcome=Outcome.REFUSED, target=f"quote:{quote.id}",
                message=why,
                detail={"event": event.event_id, "amount": event.amount})
        u.outbox(account_id=quote.account_id, kind=OutboxKind.REFUND_NEEDED, user_id=quote.created_by,
                 dedupe_key=f"refund:{quote.id}:{event.event_id}", payload={"quote_id": quote.id, "reason": why})
        return EventResult("refund_needed", quote.id)

    @staticmethod
    def _outside_its_period(u: Unit, quote: Quote) -> str | None:
        """Why a paid quote cannot be applied because a billing period it was priced in has ended
        (its few cents would buy the change for the whole next period), or None."""
        s = u.s
        for ln in quote.lines:
            if ln.get("new_period"):
                continue
            if quote.kind == QuoteKind.UPGRADE:
                pool = s.get(Pool, quote.pool_id)
                sub = s.get_one(Subscription, pool.subscription_id) if pool is not None else None
            else:
                sub = s.scalars(select(Subscription).where(Subscription.account_id == quote.account_id,
                                                           Subscription.interval == ln["interval"])).first()
            if sub is None or utc(current(u, sub).period_start) != utc(datetime.fromisoformat(ln["period_start"])):
                return str(REFUND_OTHER_PERIOD)
        return None

    @staticmethod
    def _still_applicable(u: Unit, quote: Quote) -> str | None:
        """Whether a paid quote can still be applied as quoted (it may have expired or been
        cancelled while the payment was under way)."""
        if quote.kind != QuoteKind.UPGRADE:
            return None
        s = u.s
        pool = s.get(Pool, quote.pool_id)
        seats = s.scalars(select(Seat).where(Seat.pool_id == quote.pool_id, Seat.user_id.in_(quote.user_ids))).all()
        if pool is None or len(seats) != len(quote.user_ids):
            return "Some of the quoted users no longer hold a seat in the pool."
        try:
            check_not_held(u, [seat.id for seat in seats], u.now, except_quote=quote.id)
        except HeldByQuote as e:
            return str(e.message)  # (stored with the quote: a plain str)
        return None

    @staticmethod
    def apply(u: Unit, quote: Quote, provider: str, event_id: str | None) -> None:
        """Settle a quote: seats move or are added, audit and notifications written, all in the
        caller's transaction. The quote row is locked, so this runs once per quote."""
        s, now = u.s, u.now
        touched: dict[int, Subscription] = {}
        if quote.kind == QuoteKind.UPGRADE:
            source = s.scalars(select(Pool).where(Pool.id == quote.pool_id).with_for_update()).one()
            sub = current(u, s.get_one(Subscription, source.subscription_id), now)
            assert quote.to_plan is not None, "an upgrade quote names its plan"
            target = get_or_create_pool(u, sub, quote.to_plan)
            seat_ids: list[int] = []
            for chunk in chunks(quote.user_ids):
                seat_ids += s.scalars(select(Seat.id).where(Seat.pool_id == source.id, Seat.user_id.in_(chunk))).all()
            n = len(seat_ids)
            for chunk in chunks(seat_ids):
                # one statement per chunk: each seat changes pool in place, never unassigned
                s.execute(update(Seat).where(Seat.id.in_(chunk)).values(pool_id=target.id, downgrade_to=None,
                                                                        plan_since=now))
            source.quantity -= n
            source.removal_scheduled = min(source.removal_scheduled, source.quantity - assigned_count(u, source.id))
            target.quantity += n
            touched[sub.id] = sub
            u.outbox_many(account_id=quote.account_id, kind=OutboxKind.LICENSE_UPGRADED,
                          payload={"quote_id": quote.id, "from_plan": quote.from_plan, "to_plan": quote.to_plan,
                                   "effective": now.isoformat()},
                          users={f"quote:{quote.id}:user:{uid}": uid for uid in quote.user_ids})
        else:
            for ln in quote.lines:
                of_interval = select(Subscription).where(Subscription.account_id == quote.account_id,
                                                         Subscription.interval == ln["interval"]).with_for_update()
                found = s.scalars(of_interval).first()
                if found is None:
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
                    sub = current(u, found, now)
                pool = get_or_create_pool(u, sub, ln["plan_code"])
                pool.quantity += ln["quantity"]
                touched[sub.id] = sub
            u.outbox(account_id=quote.account_id, kind=OutboxKind.PURCHASE_PAID,
                     user_id=quote.created_by, dedupe_key=f"quote:{quote.id}:buyer",
                     payload={"quote_id": quote.id})
        if quote.carried:  # billed with the next invoice, through the provider, once (outbox + key)
            u.outbox(account_id=quote.account_id, kind=OutboxKind.CARRY_FORWARD,
                     dedupe_key=f"billing:carry:{quote.id}", payload={"quote_id": quote.id})
        close_quote(u, quote, QuoteStatus.PAID, None)
        u.audit(account_id=quote.account_id, tenant_id=None, actor_id=None, actor=provider,
                action=AuditAction.QUOTE_SETTLED, target=f"quote:{quote.id}",
                detail={"kind": quote.kind, "due_now": quote.due_now, "carried": quote.carried or 0,
                        "users": len(quote.user_ids), "event": event_id})
        s.flush()
        for sub in touched.values():
            queue_billing_sync(u, sub, f"quote:{quote.id}:{sub.id}")
