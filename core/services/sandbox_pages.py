"""The sandbox payment provider's pages: pay or cancel a quote's sandbox link (no money moves).
Kept together and self-contained: they leave the core for a payments package later."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Account, Payment, Quote
from core.payments import PaymentEvent
from core.services.quote_lifecycle import close_quote, effective_status
from core.views import PayPage

if TYPE_CHECKING:
    from core.services.quotes import Quotes
    from core.services.settlement import Settlement
    from core.unit_of_work import Unit, Units


class SandboxPages:
    def __init__(self, units: Units, quotes: Quotes, settlement: Settlement):
        self.units = units
        self.quotes = quotes
        self.settlement = settlement

    def _sandbox_payment(self, s: Session, token: str) -> Payment | None:
        if not isinstance(token, str) or not 16 <= len(token) <= 64:
            return None
        return s.scalars(select(Payment).where(Payment.provider == "sandbox", Payment.external_id == token)).first()

    def pay_page(self, token: str) -> PayPage:
        with self.units.system_read() as u:
            s = u.s
            payment = self._sandbox_payment(s, token)
            if payment is None:
                return PayPage("unknown")
            quote = s.get_one(Quote, payment.quote_id)
            view = self.quotes.view(u, quote)
            state = {"open": "payable"}.get(view.status, view.status)
            return PayPage(state, view, s.get_one(Account, quote.account_id).name)

    def sandbox_pay(self, token: str) -> PayPage:
        page = self.pay_page(token)
        if page.state != "payable":
            return page
        q = page.quote
        assert q is not None, "a payable page shows its quote"
        self.settlement.handle_payment_event(PaymentEvent(provider="sandbox", event_id=f"sandbox:{token}:paid",
                                                          kind="paid", quote_id=q.id, external_id=token,
                                                          amount=q.due_now, currency=q.currency))
        return self.pay_page(token)

    def sandbox_cancel(self, token: str) -> PayPage:
        page = self.pay_page(token)
        if page.state != "payable":
            return page
        q = page.quote
        assert q is not None, "a payable page shows its quote"

        def work(u: Unit):
            quote = u.s.scalars(select(Quote).where(Quote.id == q.id).with_for_update()).one()
            if effective_status(quote, u.now) == "open":
                close_quote(u, quote, "cancelled", None)
                u.audit(account_id=quote.account_id, tenant_id=None, actor_id=None, actor="payment page",
                        action="quote.cancelled", target=f"quote:{quote.id}")

        self.units.system_write(work)
        return self.pay_page(token)
