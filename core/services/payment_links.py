"""Payment links: created once per quote at the provider (a network call between two
transactions, never inside a unit), closed when the quote closes, read and declined by their
payer on a provider's page, and the amounts carried to the next invoice."""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, NamedTuple

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from core.errors import DomainError, InvalidInput, Message, PaymentRefused, PaymentUnavailable
from core.kinds import AuditAction, PaymentStatus, QuoteStatus
from core.models import Account, Payment, Quote
from core.payments import CarryForward, PaymentGateway, PaymentLine, PaymentProviderError, PaymentRequest
from core.services.quote_lifecycle import (
    QUOTE_PAYMENT,
    billed_as,
    close_quote,
    effective_status,
    load_quote,
    mark_link_closed,
    require_open,
)
from core.services.shared import attempt_key
from core.views import Actor, CallerView, ChatAddress, LinkedQuote, QuoteView

if TYPE_CHECKING:
    from core.services.addresses import Addresses
    from core.services.quotes import Quotes
    from core.unit_of_work import Unit, Units

log = logging.getLogger(__name__)

PAYMENT_NO_ANSWER = Message("The payment service did not answer. Nothing was charged; please try again in a minute.")
PAYMENT_FAILED_NOW = Message("The payment service could not create the payment link just now. Nothing was charged; "
                             "please try again in a minute.")
_EXTERNAL_ID_MAX_CHARS = 255  # (the column's size: a longer id names no link)

PAYMENT_REFUSED = {
    "credentials": Message("The payment service refused this server's credentials, so no payment link can be "
                           "created. Nothing was charged. Ask whoever runs License Desk to check its payment "
                           "settings: trying again will not help until then."),
    "request": Message("The payment service refused to create a payment link for this quote. Nothing was charged. "
                       "Ask whoever runs License Desk to check the account's billing profile and the payment "
                       "settings: trying again will not help until then."),
}


class LinkPlan(NamedTuple):
    """What :meth:`PaymentLinks.plan_link` read before the provider is called: ``request`` None
    when the quote has its link already (``view`` shows it)."""

    caller: CallerView
    view: QuoteView
    request: PaymentRequest | None
    link_attempt: int


class PaymentLinks:
    def __init__(self, units: Units, quotes: Quotes, addresses: Addresses, gateway: PaymentGateway | None):
        self.units = units
        self.quotes = quotes
        self.addresses = addresses
        self.gateway = gateway

    def payment_link(self, actor: Actor, quote_id, *, posted_card: tuple[str, ChatAddress] | None = None,
                     plan: LinkPlan | None = None) -> QuoteView:
        """The quote's payment link, created once (a quote yields at most one link).

        ``posted_card`` (message ref, address): the message showing the quote, remembered as
        :meth:`Addresses.record_posted_card` does, in the transaction that stores the link (or on
        its own when the link existed already); not remembered when this raises. ``plan``: what
        :meth:`plan_link` read for this quote in the unit that just wrote it (not read again).
        Never inside a unit: it calls the payment provider between its transactions."""
        self.units.outside("payment_link")
        view, remembered = self._payment_link(actor, quote_id, posted_card, plan)
        if posted_card is not None and not remembered:
            self.addresses.record_posted_card(view.account_id, "quote", view.id, *posted_card)
        return view

    def plan_link(self, actor: Actor, quote_id) -> LinkPlan:
        """What creating the quote's link needs (the caller, the quote, its payment if any and the
        provider's request), read in the open unit if there is one (the unit that wrote the
        quote: no transaction of its own), otherwise in a read of its own."""
        with self.units.reading(actor) as u:
            caller = u.caller(actor, True)
            quote = load_quote(u, caller, quote_id)
            require_open(u, quote)
            if quote.due_now <= 0:
                raise InvalidInput(Message("Nothing is due on this quote: confirm it instead of paying."))
            existing = u.s.scalars(QUOTE_PAYMENT, {"quote": quote.id}).first()
            view = self.quotes.view(u, quote, payment=existing, creator=caller)
            request = None if existing else self._payment_request(view, quote, u.s.get_one(Account,
                                                                                            caller.account_id))
            return LinkPlan(caller, view, request, quote.link_attempt)

    def _payment_link(self, actor: Actor, quote_id, posted_card: tuple[str, ChatAddress] | None,
                      plan: LinkPlan | None) -> tuple[QuoteView, bool]:
        """(the quote with its link, whether ``posted_card`` was remembered with the link)."""
        target = f"quote:{quote_id}"
        units = self.units
        try:
            caller, view, request, link_attempt = plan or self.plan_link(actor, quote_id)
            if request is None:
                return view, False
            if self.gateway is None:
                raise PaymentUnavailable(Message("Payments are not configured on this server. Ask your administrator."))
            if request.amount < self.quotes.minimum_charge(request.currency):
                raise PaymentUnavailable(Message(
                    "The amount due now is below the smallest card payment the payment service accepts, and "
                    "this account has no billing profile there to add it to the next invoice. Include more "
                    "users or licenses in this change."))
            try:
                link = self.gateway.create_link(request)
            except PaymentProviderError as e:
                log.warning("payment provider failed for quote %s: %s", view.id, e)
                if e.answered:  # the provider keeps that answer for the key: the next attempt gets a new one
                    self._next_attempt(view.id, Quote.link_attempt, link_attempt)
                if e.permanent:
                    raise PaymentRefused(PAYMENT_REFUSED.get(e.reason or "", PAYMENT_REFUSED["request"])) from None
                raise PaymentUnavailable(PAYMENT_FAILED_NOW if e.answered else PAYMENT_NO_ANSWER) from None

            def store():
                u = units.current()
                s = u.s
                q = load_quote(u, caller, quote_id, lock=True)
                require_open(u, q)
                payment = s.scalars(QUOTE_PAYMENT, {"quote": q.id}).first()
                if payment is None:
                    payment = Payment(quote_id=q.id, provider=link.provider, external_id=link.external_id,
                                      url=link.url, status=PaymentStatus.PENDING, amount=q.due_now,
                                      currency=q.currency, created_at=u.now, updated_at=u.now)
                    s.add(payment)
                    s.flush()
                    u.audit_ok(caller, AuditAction.PAYMENT_LINK_CREATED, f"quote:{q.id}",
                               {"provider": link.provider, "amount": q.due_now})
                if posted_card is not None:  # (a savepoint: the same card recorded at once elsewhere is fine)
                    with contextlib.suppress(IntegrityError), s.begin_nested():
                        self.addresses.posted_card_in(u, q.account_id, "quote", q.id, *posted_card)
                        s.flush()
                # (its users as read before the link was made: the quote's users do not change)
                return (self.quotes.view(u, q, payment=payment, creator=caller, users=list(view.users)),
                        posted_card is not None)

            try:
                return units.writing(actor, store)
            except IntegrityError:  # a concurrent click stored the link first: return that one
                with units.reading(actor) as u:
                    return self.quotes.view(u, load_quote(u, caller, quote_id)), False
        except DomainError as e:
            units.refuse(actor, AuditAction.PAYMENT_LINK, e, target)
            raise

    @staticmethod
    def _payment_request(view: QuoteView, quote: Quote, account: Account) -> PaymentRequest:
        desc = billed_as(view)
        lines = tuple(PaymentLine(f"{ln.kind} {ln.quantity} × {ln.plan_name}", ln.amount) for ln in view.lines)
        return PaymentRequest(quote_id=quote.id, account_id=account.id, account_name=account.name,
                              currency=quote.currency, amount=quote.due_now, description=desc[:250], lines=lines,
                              expires_at=quote.expires_at, customer_ref=account.billing_ref,
                              idempotency_key=attempt_key(quote.id, "link", quote.link_attempt),
                              attempt_at=quote.link_attempt_at or quote.created_at)

    def _next_attempt(self, quote_id: str, column, tried: int) -> None:
        """Start the next attempt (a new idempotency key) after ``tried`` got a definite answer,
        once whatever the number of processes that saw that answer (compare and set). Never
        inside a unit (it follows a call to the provider)."""
        self.units.outside("the next payment attempt")

        def work(u: Unit):
            values: dict[str, object] = {column.key: tried + 1}
            if column is Quote.link_attempt:
                values["link_attempt_at"] = u.now
            u.s.execute(update(Quote).where(Quote.id == quote_id, column == tried).values(**values))

        self.units.system_write(work)

    def link_to_close(self, payload: dict) -> str | None:
        """The provider's id of the link a ``close_link`` billing message asks to close (None: done)."""
        with self.units.system_read() as u:
            payment = u.s.get(Payment, payload.get("payment_id"))
            return payment.external_id if payment is not None and payment.status == PaymentStatus.CLOSING else None

    def link_closed(self, payload: dict, closed: bool) -> None:
        """The provider answered a ``close_link``: closed (the quote's cards now say nothing was
        charged), or not closable because the payment went through: its event will follow and
        the payment is refunded, never applied (the cards keep saying so)."""

        def work(u: Unit) -> None:
            payment = u.s.get(Payment, payload.get("payment_id"), with_for_update=True)
            if payment is None or payment.status != PaymentStatus.CLOSING:
                return
            if not closed:
                log.warning("quote %s: its payment link could not be closed, a payment went through; it will be "
                            "refunded", payment.quote_id)
                return
            mark_link_closed(u, payment)

        self.units.system_write(work)

    def carry_request(self, payload: dict) -> CarryForward | None:
        """What a ``carry_forward`` billing message asks the provider for, read now (None: nothing
        to carry, or the account has no customer at the provider any more: logged)."""
        with self.units.system_read() as u:
            quote = u.s.get(Quote, str(payload.get("quote_id")))
            if quote is None or not quote.carried:
                return None
            account = u.s.get_one(Account, quote.account_id)
            view = self.quotes.view(u, quote)
        if not account.billing_ref:
            log.warning("quote %s: %d carried to the next invoice, but account %s has no billing profile",
                        quote.id, quote.carried, account.id)
            return None
        return CarryForward(customer_ref=account.billing_ref, amount=quote.carried, currency=quote.currency,
                            description=f"License Desk: {billed_as(view)}, prorated (under the minimum card "
                                        "payment)",
                            quote_id=quote.id, idempotency_key=attempt_key(quote.id, "carry", quote.carry_attempt))

    def carry_answered(self, carry: CarryForward) -> None:
        """The provider gave a definite (error) answer to ``carry``: it replays it to that key, so
        the next attempt takes a new one (unless another process already moved on)."""
        with self.units.system_read() as u:
            tried = u.s.scalar(select(Quote.carry_attempt).where(Quote.id == carry.quote_id))
        if tried is not None and attempt_key(carry.quote_id, "carry", tried) == carry.idempotency_key:
            self._next_attempt(carry.quote_id, Quote.carry_attempt, tried)

    # ------------------------------------------------------------------ the payer, on a provider's page

    @staticmethod
    def _by_link(u: Unit, provider: str, external_id: str) -> Payment | None:
        if not isinstance(external_id, str) or not 0 < len(external_id) <= _EXTERNAL_ID_MAX_CHARS:
            return None
        return u.s.scalars(select(Payment).where(Payment.provider == provider,
                                                 Payment.external_id == external_id)).first()

    def linked_quote(self, provider: str, external_id: str) -> LinkedQuote | None:
        """The quote that ``provider``'s link ``external_id`` collects for, as its payer sees it
        (the link is the payer's credential: no caller), or None for a link that is not ours."""
        with self.units.system_read() as u:
            payment = self._by_link(u, provider, external_id)
            if payment is None:
                return None
            quote = u.s.get_one(Quote, payment.quote_id)
            return LinkedQuote(self.quotes.view(u, quote), u.s.get_one(Account, quote.account_id).name)

    def cancel_by_payer(self, provider: str, external_id: str) -> None:
        """The payer cancelled on the provider's page: the quote of that link, while it is open,
        is cancelled (the audit log says by the payment page); otherwise nothing happens."""

        def work(u: Unit) -> None:
            payment = self._by_link(u, provider, external_id)
            if payment is None:
                return
            quote = u.s.scalars(select(Quote).where(Quote.id == payment.quote_id).with_for_update()).one()
            if effective_status(quote, u.now) == QuoteStatus.OPEN:
                close_quote(u, quote, QuoteStatus.CANCELLED, None)
                u.audit(account_id=quote.account_id, tenant_id=None, actor_id=None, actor="payment page",
                        action=AuditAction.QUOTE_CANCELLED, target=f"quote:{quote.id}")

        self.units.system_write(work)
