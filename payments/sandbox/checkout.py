"""What the sandbox pay page does for its payer: show a link's quote, pay it (no money moves:
a sandbox "paid" event goes through the core's settlement, as a provider's webhook would) or
cancel it. The page talks to the core through its public use cases only."""

from __future__ import annotations

from dataclasses import dataclass

from core.kinds import PaymentEventKind
from core.licensing import Licensing
from core.payments import PaymentEvent
from core.views import QuoteView
from payments.sandbox.gateway import SandboxGateway

NAME = SandboxGateway.name


@dataclass(frozen=True)
class PayPage:
    """What the sandbox payment page shows for a token."""

    state: str  # payable | paid | expired | cancelled | unknown | refund_needed
    quote: QuoteView | None = None
    account_name: str | None = None


def _is_token(token: object) -> bool:
    """A token as the sandbox gateway makes them (anything else names no link: not looked up)."""
    return isinstance(token, str) and 16 <= len(token) <= 64


class SandboxCheckout:
    def __init__(self, lic: Licensing):
        self.lic = lic

    def page(self, token: str) -> PayPage:
        linked = self.lic.links.linked_quote(NAME, token) if _is_token(token) else None
        if linked is None:
            return PayPage("unknown")
        state = {"open": "payable"}.get(linked.quote.status, linked.quote.status)
        return PayPage(state, linked.quote, linked.account_name)

    def pay(self, token: str) -> PayPage:
        page = self.page(token)
        if page.state != "payable":
            return page
        q = page.quote
        assert q is not None, "a payable page shows its quote"
        self.lic.settlement.handle_payment_event(PaymentEvent(
            provider=NAME, event_id=f"sandbox:{token}:paid", kind=PaymentEventKind.PAID, quote_id=q.id,
            external_id=token, amount=q.due_now, currency=q.currency))
        return self.page(token)

    def cancel(self, token: str) -> PayPage:
        page = self.page(token)
        if page.state != "payable":
            return page
        self.lic.links.cancel_by_payer(NAME, token)
        return self.page(token)
