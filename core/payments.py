"""The payment port: what the core asks of a payment provider, and what it hears back.

The core never imports a provider: a gateway is injected into the licensing service. The
providers (``payments/sandbox``, ``payments/stripe``) live outside the core, each in its own
package, chosen by ``PAYMENTS`` through ``payments.registry``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class PaymentLine:
    """One line the customer sees on the provider's page (amount already prorated, discounted)."""

    description: str
    amount: int  # minor units, may be negative for a credit


@dataclass(frozen=True)
class PaymentRequest:
    """What the core asks a gateway to collect: exactly the quoted amount."""

    quote_id: str
    account_id: int
    account_name: str
    currency: str  # ISO 4217, upper case
    amount: int  # minor units, > 0
    description: str
    lines: tuple[PaymentLine, ...]
    expires_at: datetime  # aware UTC; the link must not outlive the quote
    customer_ref: str | None = None  # provider's customer id, when the account has one
    metadata: dict[str, str] = field(default_factory=dict)
    # This attempt's key and start, recorded by the core: a retry of an attempt that got no answer
    # sends the same key and the same parameters; a new attempt (after a definite answer) a new key.
    idempotency_key: str | None = None
    attempt_at: datetime | None = None


@dataclass(frozen=True)
class PaymentLink:
    provider: str
    external_id: str  # provider's id (Stripe Checkout Session id, or the sandbox token)
    url: str


@dataclass(frozen=True)
class SubscriptionItemChange:
    """After settlement: the provider-side subscription must bill ``quantity`` of ``price_ref``."""

    plan_code: str
    interval: str  # "month" | "year"
    quantity: int
    unit_amount: int
    currency: str


@dataclass(frozen=True)
class SubscriptionSync:
    subscription_ref: str  # provider subscription id
    items: tuple[SubscriptionItemChange, ...]  # the full desired state of the subscription's items
    idempotency_key: str


@dataclass(frozen=True)
class CarryForward:
    """An amount owed now that is below the provider's minimum charge: added to the customer's
    next invoice instead of being collected through a link (as billing providers do with an
    invoice under their minimum)."""

    customer_ref: str  # provider's customer id
    amount: int  # minor units, > 0, already prorated and discounted
    currency: str  # upper case
    description: str
    quote_id: str
    idempotency_key: str


class PaymentProviderError(Exception):
    """The provider could not be reached or refused the call.

    ``answered``: the provider gave a definite answer that it keeps for the request's idempotency
    key (providers replay the first answer to a key, errors included): a new attempt needs a new
    key. False: no answer (timeout, connection error) or one that is not kept (rate limit, a
    concurrent request with the same key): the retry reuses the key, as the request may have run.
    ``permanent``: the provider refused the request itself; retrying will not help until someone
    fixes the cause. ``reason`` then says which: "credentials" (the server's keys) or "request"."""

    def __init__(self, message: str, *, answered: bool = False, permanent: bool = False,
                 reason: str | None = None):
        super().__init__(message)
        self.answered = answered
        self.permanent = permanent
        self.reason = reason


@dataclass(frozen=True)
class LinkTraits:
    """How the core treats the payment links of one provider (``PaymentGateway.link_traits``)."""

    # The link's external id is its bearer credential (anyone holding it can pay): never shown,
    # a receipt names the payment by the quote's own reference instead.
    secret_id: bool = False
    # The provider's page asks the core whether the quote is still open before taking a payment:
    # closing the quote closes its link at once, with no call to the provider.
    closes_with_quote: bool = False


class PaymentGateway(Protocol):
    name: str
    link_traits: LinkTraits

    def create_link(self, request: PaymentRequest) -> PaymentLink:
        """Create (idempotently, per quote id) a payment link for exactly ``request.amount``.

        Raises PaymentProviderError when the provider is unreachable or fails."""
        ...

    def sync_subscription(self, sync: SubscriptionSync) -> None:
        """Make the provider's subscription bill the new items from the next renewal, with no
        further proration (the prorated amount was already collected through the link)."""
        ...

    def minimum_charge(self, currency: str) -> int:
        """The smallest amount (minor units) a payment link may collect in ``currency``."""
        ...

    def carry_forward(self, carry: CarryForward) -> None:
        """Add ``carry.amount`` to the customer's next invoice, once per idempotency key.

        Raises PaymentProviderError when the provider is unreachable or fails."""
        ...

    def close_link(self, external_id: str) -> bool:
        """Make the payment link ``external_id`` unpayable. True: it is closed (now or before);
        False: it can no longer be closed because the payment went through (or is under way):
        the provider's event about it will follow.

        Raises PaymentProviderError when the provider is unreachable or fails."""
        ...


@dataclass(frozen=True)
class PaymentEvent:
    """A provider's notification, already authenticated, translated to the core's words.

    ``kind``: "paid" (settle), "failed" (payment failed, the quote may be paid again),
    "expired" (the link expired unpaid), or "ignored" (an event the core does not use)."""

    provider: str
    event_id: str  # unique per provider: processed at most once
    kind: str
    quote_id: str | None
    external_id: str | None  # the payment's external id (Checkout Session id)
    amount: int | None = None  # what the provider collected, minor units
    currency: str | None = None  # upper case
    payer: str | None = None  # the payer's e-mail, when the provider tells it (the receipt names it)
