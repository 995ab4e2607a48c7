"""A quote's life after pricing, shared by quotes, links, settlement and the payers' pages:
loading it, its view, the seats it holds, and closing it (holds freed, link closed, request
reopened, cards updated)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, delete, func, select

from core.errors import HeldByQuote, Message, NotFound, QuoteNotOpen
from core.kinds import AuditAction, OutboxKind, OutboxStatus, PaymentStatus, QuoteKind, QuoteStatus, RequestStatus
from core.models import OutboxMessage, Payment, PostedCard, Quote, QuoteHold, UpgradeRequest, User
from core.services.shared import chunks, execute_core, locked
from core.text import fold
from core.views import CallerView, QuoteLineView, QuoteView, RenewalView, UserRow

if TYPE_CHECKING:
    from core.services.plans import PlanViews
    from core.unit_of_work import Unit

QUOTE_NOT_OPEN = {
    "expired": Message("This quote has expired; nothing was charged. Prepare a new one to see today's amounts."),
    "paid": Message("This quote is already paid."),
    "cancelled": Message("This quote was cancelled; nothing was charged."),
    "refund_needed": Message("This quote could not be applied after payment; our team has been told to refund it."),
}

# (of the caller's account?, locked?)
_QUOTE = {(mine, lock): locked(select(Quote).where(Quote.id == bindparam("quote"),
                                                   *([Quote.account_id == bindparam("account")] if mine else [])),
                               lock)
          for mine in (False, True) for lock in (False, True)}
QUOTE_PAYMENT = select(Payment).where(Payment.quote_id == bindparam("quote"))
_USER_ROWS = select(User.id, User.name, User.email).where(User.id.in_(bindparam("users", expanding=True)))
_USER_NAME = select(User.name).where(User.id == bindparam("user"))
_HELD = {but: (select(User.name, Quote.expires_at, Quote.id, Quote.created_by)
               .select_from(QuoteHold).join(Quote, Quote.id == QuoteHold.quote_id)
               .join(User, User.id == Quote.created_by)
               .where(QuoteHold.seat_id.in_(bindparam("seats", expanding=True)),
                      QuoteHold.expires_at > bindparam("now"), Quote.status == QuoteStatus.OPEN,
                      *([Quote.id != bindparam("quote")] if but else []))
               .limit(1))
         for but in (False, True)}  # (one quote's own holds left out?)


def load_quote(u: Unit, caller: CallerView | None, quote_id, *, lock: bool = False) -> Quote:
    if not isinstance(quote_id, str) or not 1 <= len(quote_id) <= 32:
        raise NotFound(Message("That quote does not exist."))
    params = {"quote": quote_id} if caller is None else {"quote": quote_id, "account": caller.account_id}
    quote = u.s.scalars(_QUOTE[(caller is not None, lock)], params).first()
    if quote is None:
        raise NotFound(Message("That quote does not exist in your account."))
    return quote


def effective_status(quote: Quote, now: datetime) -> str:
    if quote.status == QuoteStatus.OPEN and quote.expires_at <= now:
        return QuoteStatus.EXPIRED
    return quote.status


def require_open(u: Unit, quote: Quote) -> None:
    status = effective_status(quote, u.now)
    if status == QuoteStatus.OPEN:
        return
    raise QuoteNotOpen(QUOTE_NOT_OPEN.get(status) or Message("This quote can no longer be used."), status=status)


def check_not_held(u: Unit, seat_ids: list[int], now: datetime, *, except_quote: str | None = None,
                   by: int | None = None):
    """Refuse seats held by an open quote; ``by``: the caller's user id (their own quote is
    said to be theirs, to open or cancel, not someone to ask)."""
    if not seat_ids:
        return
    for chunk in chunks(seat_ids):
        params = {"seats": chunk, "now": now, **({"quote": except_quote} if except_quote else {})}
        row = u.s.execute(_HELD[bool(except_quote)], params).first()
        if row:
            raise HeldByQuote(row[0], row[1], row[2], mine=by is not None and row[3] == by)


def billed_as(view: QuoteView) -> str:
    """What a quote buys, as the provider's page or invoice line names it."""
    if view.kind == QuoteKind.UPGRADE:
        return f"Upgrade {len(view.users)} × {view.from_plan_name} → {view.to_plan_name}"
    return "Licenses: " + ", ".join(f"{ln.quantity} × {ln.plan_name} ({ln.interval}ly)" for ln in view.lines)


_UNREAD = object()  # (what quote_view is not told it reads)


def quote_view(u: Unit, plans: PlanViews, quote: Quote, *, payment=_UNREAD, creator: CallerView | None = None,
               users: list[UserRow] | None = None) -> QuoteView:
    """The quote as a view. What the caller has in hand already is not read again: ``payment``
    (its Payment row, or None: read in this transaction or just written), ``creator`` (the caller,
    when they created it) and ``users`` (its users' rows, from a view of this quote in this turn)."""
    s = u.s
    plan_name = plans.name_or_none
    if users is None and quote.user_ids:
        found = {}
        for chunk in chunks(quote.user_ids):
            for r in execute_core(s, _USER_ROWS, {"users": chunk}):
                found[r[0]] = r
        users = [UserRow(id=uid, name=found[uid][1], email=found[uid][2], plan_code=quote.from_plan)
                 for uid in quote.user_ids if uid in found]
        users.sort(key=lambda u: (fold(u.name), u.id))
    users = users or []
    if payment is _UNREAD:
        payment = s.scalars(QUOTE_PAYMENT, {"quote": quote.id}).first() if quote.id else None
    if creator is not None and creator.user_id == quote.created_by:
        creator_name = creator.name
    else:  # (only the name: not the whole user)
        row = execute_core(s, _USER_NAME, {"user": quote.created_by}).first()
        creator_name = row[0] if row else ""
    lines = [QuoteLineView(
        kind=ln["kind"], plan_code=ln["plan_code"], plan_name=plan_name(ln["plan_code"]),
        interval=ln["interval"], quantity=ln["quantity"], unit_price=ln["unit_price"], fraction=ln["fraction"],
        gross=ln["gross"], amount=ln["amount"], period_start=datetime.fromisoformat(ln["period_start"]),
        period_end=datetime.fromisoformat(ln["period_end"]), renewal_amount=ln["renewal_amount"],
        new_period=ln["new_period"]) for ln in quote.lines]
    interval = lines[0].interval if quote.kind == QuoteKind.UPGRADE and lines else None
    receipt = {}
    if quote.status == QuoteStatus.PAID:
        notices = s.execute(select(OutboxMessage.status, func.count()).where(
            OutboxMessage.account_id == quote.account_id, OutboxMessage.kind == OutboxKind.LICENSE_UPGRADED,
            OutboxMessage.dedupe_key.like(f"quote:{quote.id}:user:%")).group_by(OutboxMessage.status)).all()
        receipt = dict(paid_at=quote.closed_at, paid_amount=payment.amount if payment else quote.due_now,
                       paid_by=payment.payer_email if payment else None,  # (when the provider told it)
                       payment_reference=(None if payment is None else f"{quote.id[:8]}-{payment.id}"
                                          if u.link_traits(payment.provider).secret_id else payment.external_id),
                       notices_total=sum(n for _, n in notices),
                       notices_delivered=sum(n for status, n in notices if status == OutboxStatus.SENT),
                       notices_unreachable=sum(n for status, n in notices
                                               if status in (OutboxStatus.UNREACHABLE, OutboxStatus.FAILED)))
    renewals: dict[datetime, int] = {}  # each line's period end -> what renews then
    for ln in lines:
        renewals[ln.period_end] = renewals.get(ln.period_end, 0) + ln.renewal_amount
    return QuoteView(
        id=quote.id, kind=quote.kind, status=effective_status(quote, u.now), account_id=quote.account_id,
        currency=quote.currency, created_by=quote.created_by, created_by_name=creator_name,
        created_at=quote.created_at, priced_at=quote.priced_at, expires_at=quote.expires_at,
        pool_id=quote.pool_id, from_plan=quote.from_plan, from_plan_name=plan_name(quote.from_plan),
        to_plan=quote.to_plan, to_plan_name=plan_name(quote.to_plan), interval=interval, users=users,
        lines=lines, gross=quote.gross, discount=quote.discount, discount_label=quote.discount_label,
        discount_percent=quote.discount_percent, due_now=quote.due_now, renewal_amount=quote.renewal_amount,
        renewal_date=quote.renewal_date, payment_url=payment.url if payment else None,
        payment_provider=payment.provider if payment else None, closed_at=quote.closed_at, note=quote.note,
        request_id=quote.request_id, carried=quote.carried or 0, payment_lapsed=quote.payment_lapsed,
        payment_status=payment.status if payment else None,
        renewals=tuple(RenewalView(date, amount) for date, amount in sorted(renewals.items())), **receipt)


def close_quote(u: Unit, quote: Quote, status: str, by: int | None, note: str | None = None) -> None:
    quote.status = status
    quote.closed_at = u.now
    quote.closed_by = by
    if note:
        quote.note = note
    u.s.execute(delete(QuoteHold).where(QuoteHold.quote_id == quote.id))
    if status != QuoteStatus.PAID:
        _close_link(u, quote)
    if status in (QuoteStatus.CANCELLED, QuoteStatus.EXPIRED) and quote.request_id is not None:
        _reopen_request(u, quote, status)
    queue_quote_cards(u, quote, status)


def _close_link(u: Unit, quote: Quote) -> None:
    """A closed quote's payment link must not stay payable: the provider is asked to close it
    through the billing outbox (retried while it does not answer). A provider whose page asks
    the core first (``LinkTraits.closes_with_quote``) already refuses it: closed at once."""
    payment = u.s.scalars(QUOTE_PAYMENT, {"quote": quote.id}).first()
    if payment is None or payment.status != PaymentStatus.PENDING:
        return
    payment.updated_at = u.now
    if u.link_traits(payment.provider).closes_with_quote:
        payment.status = PaymentStatus.CLOSED
        return
    payment.status = PaymentStatus.CLOSING
    u.outbox(account_id=quote.account_id, kind=OutboxKind.CLOSE_LINK,
             dedupe_key=f"billing:close:{quote.id}:{payment.id}", payload={"payment_id": payment.id})


def mark_link_closed(u: Unit, payment: Payment) -> None:
    payment.status = PaymentStatus.CLOSED
    payment.updated_at = u.now
    queue_quote_cards(u, u.s.get_one(Quote, payment.quote_id), "link_closed")


def _reopen_request(u: Unit, quote: Quote, status: str) -> None:
    """An approved upgrade request whose quote closed unpaid goes back to the administrators:
    pending again, its cards updated in place, the requester told."""
    s = u.s
    req = s.get(UpgradeRequest, quote.request_id, with_for_update=True)
    if req is None or req.status != RequestStatus.APPROVED or req.quote_id != quote.id:
        return
    other = s.scalar(select(UpgradeRequest.id).where(
        UpgradeRequest.requester_id == req.requester_id, UpgradeRequest.family == req.family,
        UpgradeRequest.status == RequestStatus.PENDING))
    if other is not None:  # the requester asked again meanwhile: that request stands instead
        return
    req.status, req.decided_by, req.decided_at, req.quote_id = RequestStatus.PENDING, None, None, None
    s.flush()
    for card in s.scalars(select(PostedCard).where(PostedCard.subject == "request",
                                                   PostedCard.subject_id == str(req.id))):
        u.outbox(account_id=req.account_id, kind=OutboxKind.REQUEST_CARD,
                 dedupe_key=f"card:{card.id}:reopened:{quote.id}",
                 payload={"posted_card": card.id, "request_id": req.id})
    u.outbox(account_id=req.account_id, kind=OutboxKind.REQUEST_REOPENED,
             user_id=req.requester_id, dedupe_key=f"request:{req.id}:reopened:{quote.id}",
             payload={"request_id": req.id, "quote_status": status})
    u.audit_ok(None, AuditAction.REQUEST_REOPENED, f"request:{req.id}", {"quote": quote.id, "why": status},
               account_id=req.account_id)


def queue_quote_cards(u: Unit, quote: Quote, change: str) -> None:
    """Queue the in-place update of every card showing the quote, once per ``change``."""
    cards = u.s.scalars(select(PostedCard).where(PostedCard.subject == "quote", PostedCard.subject_id == quote.id))
    for card in cards:
        u.outbox(account_id=quote.account_id, kind=OutboxKind.QUOTE_CARD,
                 dedupe_key=f"card:{card.id}:{quote.id}:{change}",  # (a dropped card's id may be reused)
                 payload={"posted_card": card.id, "quote_id": quote.id})
