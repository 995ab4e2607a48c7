"""The sandbox gateway: links to this server's own pay pages; no money moves."""

from __future__ import annotations

import secrets

from core.payments import CarryForward, LinkTraits, PaymentLink, PaymentRequest, SubscriptionSync


class SandboxGateway:
    """The embedded default: the link is ``PUBLIC_BASE_URL/pay/<unguessable token>``, a page
    served by this app whose Pay button settles the quote through the same path as a provider
    webhook."""

    name = "sandbox"
    # The token is the page's credential; the page asks the core whether the quote is open.
    link_traits = LinkTraits(secret_id=True, closes_with_quote=True)

    def __init__(self, public_base_url: str):
        self.public_base_url = public_base_url.rstrip("/")

    def create_link(self, request: PaymentRequest) -> PaymentLink:
        token = secrets.token_urlsafe(24)
        return PaymentLink(provider=self.name, external_id=token, url=f"{self.public_base_url}/pay/{token}")

    def sync_subscription(self, sync: SubscriptionSync) -> None:
        return None

    def minimum_charge(self, currency: str) -> int:
        return 1  # the sandbox takes any amount: nothing is ever carried forward

    def carry_forward(self, carry: CarryForward) -> None:
        return None

    def close_link(self, external_id: str) -> bool:
        return True  # the pay page itself refuses a quote that is no longer open
