"""Stripe implementation of :class:`core.payments.PaymentGateway` (stripe-python v16).

* ``create_link``: a hosted Checkout Session in ``payment`` mode for exactly the quoted amount,
  once per attempt (the idempotency key the core recorded for it; ``quote-<id>-link`` by default).
* ``close_link``: expires a Checkout Session (when its quote is cancelled or expires).
* ``parse_webhook``: verifies the ``Stripe-Signature`` header and translates Checkout events.
* ``sync_subscription``: makes a subscription bill a given set of items from the next renewal,
  without proration (the prorated difference was already collected through the link).

Secrets (API key, webhook secret) are given to the constructor by the caller (read from the
environment) and are never logged; errors carry short messages, never a raw Stripe payload.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe
from babel.numbers import get_currency_precision

from core.payments import (
    CarryForward,
    PaymentEvent,
    PaymentLink,
    PaymentProviderError,
    PaymentRequest,
    SubscriptionItemChange,
    SubscriptionSync,
)
from payments.stripe.traits import LINK_TRAITS

log = logging.getLogger(__name__)

WEBHOOK_TOLERANCE_SECONDS = 300
# Stripe accepts a Checkout Session ``expires_at`` between 30 minutes and 24 hours after creation,
# measured on Stripe's clock: keep a margin for clock skew and request latency.
_SESSION_MIN_LIFETIME = timedelta(minutes=30)
_SESSION_MAX_LIFETIME = timedelta(hours=24)
_CLOCK_MARGIN = timedelta(minutes=2)
_DESCRIPTION_MAX_CHARS = 500  # our own limit for the per-line breakdown shown on the pay page
PRODUCT_ID_PREFIX = "license-desk-"
# Stripe's minimum charge per currency, minor units (its "minimum and maximum charge amounts"
# table); a currency not listed here is taken as 50.
MINIMUM_CHARGE = {"usd": 50, "eur": 50, "gbp": 30, "chf": 50, "cad": 50, "aud": 50, "nzd": 50, "sgd": 50,
                  "jpy": 50, "brl": 50, "dkk": 250, "nok": 300, "sek": 300, "pln": 200, "hkd": 400, "mxn": 1000}
DEFAULT_RETURN_URL = "https://teams.microsoft.com/"  # back to Teams, where the bot confirms payment


# Stripe's object ids ("evt_1Nq..."): a prefix, "_", letters and digits; at most 255 characters
# (Stripe's changelog 2018-05-21 on ids). The core stores an event id with a few more words in
# 200 characters: a longer or odd id is stored as a digest of it (see _stored_event_id).
_STRIPE_ID = re.compile(r"[A-Za-z0-9_]{1,100}")
_STRIPE_ID_MAX_CHARS = 255
PAYER_MAX_CHARS = 254  # an e-mail address's longest path (RFC 5321), the column's size
_QUOTE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # ours are 32 hex digits: anything else names no quote


def _stored_event_id(event_id: str) -> str:
    """The event id as stored: Stripe's when it has Stripe's shape, else a digest of it (the
    same id, the same digest: a redelivery is still told apart from a new event)."""
    if _STRIPE_ID.fullmatch(event_id):
        return event_id
    digest = "evt_sha256_" + hashlib.sha256(event_id.encode("utf-8", "surrogatepass")).hexdigest()
    log.warning("stripe event id of %d characters not of Stripe's shape, stored as %s", len(event_id), digest)
    return digest


class WebhookSignatureError(Exception):
    """The webhook is not authentic (bad or missing signature, stale timestamp) or is malformed."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def product_id_for(plan_code: str) -> str:
    return f"{PRODUCT_ID_PREFIX}{plan_code}"


def _format_minor(amount: int, currency: str) -> str:
    """``1234, "USD"`` -> ``"12.34 USD"``, in integers only (zero-decimal currencies included)."""
    precision = get_currency_precision(currency)
    sign = "-" if amount < 0 else ""
    units, cents = divmod(abs(amount), 10**precision)
    number = f"{units}.{cents:0{precision}d}" if precision else str(units)
    return f"{sign}{number} {currency}"


@dataclass(frozen=True)
class _Billed:
    """One existing subscription item, reduced to what sync_subscription compares."""

    item_id: str
    plan_code: str | None
    interval: str | None
    interval_count: int
    unit_amount: int | None
    currency: str
    quantity: int

    def bills(self, want: SubscriptionItemChange) -> bool:
        return (
            self.plan_code == want.plan_code
            and self.interval == want.interval
            and self.interval_count == 1
            and self.unit_amount == want.unit_amount
            and self.currency == want.currency.lower()
        )


class StripeGateway:
    name = "stripe"
    link_traits = LINK_TRAITS

    def __init__(
        self,
        api_key: str,
        webhook_secret: str,
        *,
        api_base: str | None = None,
        timeout_seconds: float = 10,
        max_network_retries: int = 2,
        success_url: str = DEFAULT_RETURN_URL,
        cancel_url: str = DEFAULT_RETURN_URL,
        clock: Callable[[], datetime] = _utcnow,
    ):
        if not api_key:
            raise ValueError("Stripe API key is missing")
        if not webhook_secret:
            raise ValueError("Stripe webhook signing secret is missing")
        self._webhook_secret = webhook_secret
        self._success_url = success_url
        self._cancel_url = cancel_url
        self._clock = clock
        self._known_products: set[str] = set()
        # One client for the gateway's lifetime: it keeps the key (we don't) and a connection pool.
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base} if api_base else None,
            max_network_retries=max_network_retries,
            http_client=stripe.RequestsClient(timeout=timeout_seconds),
        )

    def __repr__(self) -> str:  # never show the secrets
        return f"StripeGateway(success_url={self._success_url!r})"

    # ------------------------------------------------------------------ payment links

    def create_link(self, request: PaymentRequest) -> PaymentLink:
        if isinstance(request.amount, bool) or not isinstance(request.amount, int) or request.amount <= 0:
            raise ValueError("a payment link needs a positive integer amount in minor units")
        currency = request.currency.lower()
        product_data: dict[str, Any] = {"name": request.description}
        breakdown = self._breakdown(request)
        if breakdown:
            product_data["description"] = breakdown
        metadata = {**request.metadata, "quote_id": request.quote_id, "account_id": str(request.account_id)}
        params: dict[str, Any] = {
            "mode": "payment",
            "line_items": [
                {
                    "price_data": {
                        "currency": currency,
                        "unit_amount": request.amount,
                        "product_data": product_data,
                    },
                    "quantity": 1,
                }
            ],
            "metadata": metadata,
            "client_reference_id": request.quote_id,
            "success_url": self._success_url,
            "cancel_url": self._cancel_url,
        }
        if request.customer_ref:
            params["customer"] = request.customer_ref
        # Stripe saves the first answer to a key, 500s included, and replays it for 24 h: the core
        # gives each attempt its own key (a retry after no answer reuses it, with the same
        # parameters, since the expiry is computed from the attempt's start, not from "now").
        key = request.idempotency_key or f"quote-{request.quote_id}-link"
        attempt = dict(params)
        expires_at = self._session_expiry(request.expires_at, request.attempt_at or self._clock())
        if expires_at is not None:
            attempt["expires_at"] = expires_at
        try:
            session = self._client.v1.checkout.sessions.create(attempt, {"idempotency_key": key})
        except stripe.InvalidRequestError as exc:
            if exc.param != "expires_at":
                raise self._provider_error("create the payment link", exc) from None
            # A validation error is not saved for the key: nothing was created with it. The attempt
            # began too long ago for its expiry to be accepted now: the shortest one from now.
            attempt["expires_at"] = self._session_expiry(request.expires_at, self._clock())
            try:
                session = self._client.v1.checkout.sessions.create(attempt, {"idempotency_key": key})
            except stripe.StripeError as again:
                raise self._provider_error("create the payment link", again) from None
        except stripe.StripeError as exc:
            raise self._provider_error("create the payment link", exc) from None
        if not session.url:
            raise PaymentProviderError("Stripe returned a checkout session without a payment page.", answered=True)
        return PaymentLink(provider=self.name, external_id=session.id, url=session.url)

    def _session_expiry(self, quote_expires_at: datetime, start: datetime) -> int | None:
        """The session's ``expires_at`` (``None``: let Stripe default to 24 h). Stripe refuses
        values outside [creation + 30 min, creation + 24 h]:

        * within range: the quote's own expiry, so the link dies with the quote;
        * quote expires in less than 30 min: the shortest link Stripe allows (30 min + margin after
          the attempt's start). It may outlive the quote by up to that much; the core closes it
          when the quote closes, and a payment after the quote expired is refunded, never applied;
        * quote expires in more than 24 h: omitted (Stripe's default, 24 h); the link expires
          before the quote and Stripe sends ``checkout.session.expired``.
        """
        if quote_expires_at <= self._clock():
            raise ValueError("the quote has already expired; no payment link can be created for it")
        shortest = start + _SESSION_MIN_LIFETIME + _CLOCK_MARGIN
        if quote_expires_at < shortest:
            return int(shortest.timestamp())
        if quote_expires_at > start + _SESSION_MAX_LIFETIME - _CLOCK_MARGIN:
            return None
        return int(quote_expires_at.timestamp())

    def close_link(self, external_id: str) -> bool:
        """Expire the Checkout Session (``POST /v1/checkout/sessions/{id}/expire``). Stripe only
        expires an ``open`` session and answers an error otherwise: the session is then read to
        tell "already expired" (closed: True) from "complete" (paid or paying: False)."""
        try:
            self._client.v1.checkout.sessions.expire(external_id)
            return True
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                raise self._provider_error("close the payment link", exc) from None
            try:
                session = self._client.v1.checkout.sessions.retrieve(external_id)
            except stripe.StripeError as again:
                raise self._provider_error("close the payment link", again) from None
            if session.status == "expired":
                return True
            if session.status == "complete":
                return False
            raise self._provider_error("close the payment link", exc) from None
        except stripe.StripeError as exc:
            raise self._provider_error("close the payment link", exc) from None

    @staticmethod
    def _breakdown(request: PaymentRequest) -> str | None:
        """Per-line breakdown ("Line: 12.34 USD; Credit: -5.00 USD"), cut short with "+N more"."""
        parts = [f"{line.description}: {_format_minor(line.amount, request.currency)}" for line in request.lines]
        text = ""
        for shown, part in enumerate(parts):
            rest = len(parts) - shown - 1
            candidate = f"{text}; {part}" if text else part
            suffix = f"; +{rest} more" if rest else ""
            if len(candidate) + len(suffix) > _DESCRIPTION_MAX_CHARS:
                more = len(parts) - shown
                return f"{text}; +{more} more" if text else None
            text = candidate
        return text or None

    # ------------------------------------------------------------------ webhooks

    def parse_webhook(self, payload: bytes, signature_header: str) -> PaymentEvent:
        """The event of an authentic webhook (else :class:`WebhookSignatureError`: answered 400).

        A signed event whose fields have odd types or sizes is read, never raised on (Stripe
        retries every non-2xx answer for up to three days, and such an event would fail each
        time): a field of the wrong type is absent; an event id that is not Stripe's shape is
        replaced by a digest of it (the same id, the same digest: still processed once); a paid
        session whose amount cannot be read is not settled ("ignored", logged as an error)."""
        try:
            event = self._client.construct_event(
                payload, signature_header, self._webhook_secret, tolerance=WEBHOOK_TOLERANCE_SECONDS
            )
            data = event.to_dict()
        except stripe.SignatureVerificationError:
            raise WebhookSignatureError("invalid Stripe webhook signature") from None
        except (ValueError, TypeError, AttributeError, KeyError):  # not JSON, not an event
            raise WebhookSignatureError("malformed Stripe webhook payload") from None

        event_id = data.get("id")
        event_type = data.get("type")
        container = data.get("data")
        obj = container.get("object") if isinstance(container, dict) else None
        if not (isinstance(event_id, str) and event_id and isinstance(event_type, str) and isinstance(obj, dict)):
            raise WebhookSignatureError("malformed Stripe webhook payload")
        event_id = _stored_event_id(event_id)

        if obj.get("object") != "checkout.session":
            return PaymentEvent(self.name, event_id, "ignored", quote_id=None, external_id=None)

        if event_type == "checkout.session.completed":
            # "unpaid": an asynchronous payment method (bank debit...) is still pending;
            # async_payment_succeeded / _failed will follow.
            kind = "paid" if obj.get("payment_status") == "paid" else "ignored"
        elif event_type == "checkout.session.async_payment_succeeded":
            kind = "paid"
        elif event_type == "checkout.session.async_payment_failed":
            kind = "failed"
        elif event_type == "checkout.session.expired":
            kind = "expired"
        else:
            kind = "ignored"

        metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        quote_id = next((q for q in (metadata.get("quote_id"), obj.get("client_reference_id"))
                         if isinstance(q, str) and q), None)
        if quote_id is not None and not _QUOTE_ID.fullmatch(quote_id):
            log.warning("stripe event %s names a quote id that cannot be one of ours (%d characters)", event_id,
                        len(quote_id))
            quote_id = None
        amount = obj.get("amount_total")
        amount = amount if isinstance(amount, int) and not isinstance(amount, bool) else None
        currency = obj.get("currency")
        currency = currency.upper() if isinstance(currency, str) else None
        external_id = obj.get("id") if isinstance(obj.get("id"), str) else None
        details = obj.get("customer_details") if isinstance(obj.get("customer_details"), dict) else {}
        payer = details.get("email") if isinstance(details.get("email"), str) else None  # (the Checkout form's)
        if kind == "paid" and (amount is None or currency is None):
            # Stripe sets both on a payment-mode session; without them the amount cannot be checked
            log.error("stripe event %s: a paid Checkout Session without a readable amount_total and currency; "
                      "not applied (see the event in the Stripe Dashboard)", event_id)
            kind = "ignored"
        return PaymentEvent(
            provider=self.name,
            event_id=event_id,
            kind=kind,
            quote_id=quote_id,
            external_id=external_id[:_STRIPE_ID_MAX_CHARS] if external_id else None,
            amount=amount,
            currency=currency[:3] if currency else None,
            payer=(payer.strip()[:PAYER_MAX_CHARS] or None) if payer else None,
        )

    # ------------------------------------------------------------------ amounts under the minimum

    def minimum_charge(self, currency: str) -> int:
        """Stripe's minimum charge in ``currency`` (https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts)."""
        return MINIMUM_CHARGE.get(currency.lower(), 50)

    def carry_forward(self, carry: CarryForward) -> None:
        """A customer balance transaction: a positive amount is added to the customer's next
        invoice (what Stripe does itself with an invoice under its minimum). Once per
        idempotency key, so a retried or replayed delivery adds it once."""
        if isinstance(carry.amount, bool) or not isinstance(carry.amount, int) or carry.amount <= 0:
            raise ValueError("an amount carried forward is a positive integer in minor units")
        try:
            self._client.v1.customers.balance_transactions.create(
                carry.customer_ref,
                {"amount": carry.amount, "currency": carry.currency.lower(), "description": carry.description[:350],
                 "metadata": {"quote_id": carry.quote_id}},
                {"idempotency_key": carry.idempotency_key},
            )
        except stripe.StripeError as exc:
            raise self._provider_error("add the amount to the next invoice", exc) from None

    # ------------------------------------------------------------------ subscriptions

    def sync_subscription(self, sync: SubscriptionSync) -> None:
        """Make ``sync.subscription_ref`` bill exactly ``sync.items`` with ``proration_behavior=none``.

        Our items are recognised by plan code, read from (first found) the subscription item's
        ``metadata.plan_code`` (set on every item this gateway adds), the price's
        ``metadata.plan_code`` (catalogue prices created in the Dashboard), or the product id
        ``license-desk-<plan_code>``. An existing item is kept (quantity updated if needed) when
        it bills the same plan, interval (count 1), unit amount and currency; every other item
        is deleted, and missing ones are added with inline ``price_data`` on the plan's product.
        """
        wanted = [item for item in sync.items if item.quantity != 0]
        if any(item.quantity < 0 for item in wanted):
            raise ValueError("subscription quantities cannot be negative")
        if not wanted:
            raise ValueError("a subscription cannot be left without items; cancel it instead")
        keys = [(item.plan_code, item.interval, item.currency.lower()) for item in wanted]
        if len(set(keys)) != len(keys):
            raise ValueError("the same plan and interval appears twice in the desired items")

        try:
            subscription = self._client.v1.subscriptions.retrieve(sync.subscription_ref)
            existing = [_billed(item) for item in self._subscription_items(subscription)]
            changes = _item_changes(existing, wanted)
            if not changes:
                return  # already billing exactly this (e.g. a retry after a lost response)
            for change in changes:
                if "price_data" in change:
                    change["price_data"]["product"] = self._ensure_product(change["metadata"]["plan_code"])
            self._client.v1.subscriptions.update(
                sync.subscription_ref,
                {"items": changes, "proration_behavior": "none"},
                {"idempotency_key": sync.idempotency_key},
            )
        except stripe.StripeError as exc:
            raise self._provider_error("update the subscription", exc) from None

    def _subscription_items(self, subscription: Any) -> Iterable[dict[str, Any]]:
        items = subscription.to_dict().get("items") or {}
        if not items.get("has_more"):
            return items.get("data") or []
        listing = self._client.v1.subscription_items.list({"subscription": subscription.id, "limit": 100})
        return [item.to_dict() for item in listing.auto_paging_iter()]

    def _ensure_product(self, plan_code: str) -> str:
        """The Product our inline prices for ``plan_code`` belong to, created on first use with a
        fixed id (so concurrent or repeated creations cannot make duplicates)."""
        product_id = product_id_for(plan_code)
        if product_id in self._known_products:
            return product_id
        try:
            self._client.v1.products.retrieve(product_id)
        except stripe.InvalidRequestError as exc:
            if exc.http_status != 404:
                raise
            try:
                self._client.v1.products.create(
                    {"id": product_id, "name": f"License Desk {plan_code}", "metadata": {"plan_code": plan_code}}
                )
            except stripe.InvalidRequestError as create_exc:
                if create_exc.code != "resource_already_exists":
                    raise
        self._known_products.add(product_id)
        return product_id

    # ------------------------------------------------------------------ errors

    @staticmethod
    def _provider_error(action: str, exc: stripe.StripeError) -> PaymentProviderError:
        # Log what identifies the failure, not Stripe's message (it may echo a masked key or input).
        log.warning(
            "Stripe call failed while trying to %s: %s (http_status=%s, code=%s, request_id=%s)",
            action,
            type(exc).__name__,
            exc.http_status,
            exc.code,
            exc.request_id,
        )
        # Whether Stripe keeps this answer for the key (then a new attempt needs a new key): not
        # for no answer, nor for a 429 (the rate limiter runs before the idempotency layer) or a 409
        # (a concurrent request with the same key is running); every other answer it keeps.
        status = exc.http_status
        answered = not isinstance(exc, stripe.APIConnectionError) and status not in (409, 429)
        permanent = answered and status is not None and 400 <= status < 500 and not isinstance(
            exc, stripe.IdempotencyError)
        kind = None
        if isinstance(exc, stripe.APIConnectionError):
            reason = "Stripe could not be reached (network error or timeout)"
        elif isinstance(exc, stripe.RateLimitError) or status == 429:
            reason = "Stripe is receiving too many requests"
        elif isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
            reason = "Stripe refused our credentials; an administrator must check the configuration"
            kind = "credentials"
        elif isinstance(exc, stripe.IdempotencyError):
            reason = "Stripe refused a repeated request whose details changed"
        elif status == 409:
            reason = "Stripe is already processing the same request"
        elif isinstance(exc, stripe.InvalidRequestError) or permanent:
            reason, kind = "Stripe refused the request", "request"
        else:
            reason = "Stripe is temporarily unavailable"
        if permanent:
            return PaymentProviderError(f"Could not {action}: {reason}.", answered=True, permanent=True,
                                        reason=kind or "request")
        return PaymentProviderError(f"Could not {action}: {reason}. Please try again later.", answered=answered)


def _billed(item: dict[str, Any]) -> _Billed:
    price = item.get("price") or {}
    recurring = price.get("recurring") or {}
    product = price.get("product")
    product_id = product.get("id") if isinstance(product, dict) else product
    plan_code = (item.get("metadata") or {}).get("plan_code") or (price.get("metadata") or {}).get("plan_code")
    if not plan_code and isinstance(product_id, str) and product_id.startswith(PRODUCT_ID_PREFIX):
        plan_code = product_id[len(PRODUCT_ID_PREFIX) :]
    return _Billed(
        item_id=item["id"],
        plan_code=plan_code,
        interval=recurring.get("interval"),
        interval_count=recurring.get("interval_count") or 1,
        unit_amount=price.get("unit_amount"),
        currency=(price.get("currency") or "").lower(),
        quantity=item.get("quantity") or 0,
    )


def _item_changes(existing: list[_Billed], wanted: list[SubscriptionItemChange]) -> list[dict[str, Any]]:
    """The ``items`` parameter turning ``existing`` into ``wanted`` (empty: nothing to do)."""
    changes: list[dict[str, Any]] = []
    unmatched = list(existing)
    for want in wanted:
        match = next((have for have in unmatched if have.bills(want)), None)
        if match is not None:
            unmatched.remove(match)
            if match.quantity != want.quantity:
                changes.append({"id": match.item_id, "quantity": want.quantity})
            continue
        changes.append(
            {
                "price_data": {
                    "currency": want.currency.lower(),
                    "product": None,  # filled in by the caller once the product exists
                    "recurring": {"interval": want.interval, "interval_count": 1},
                    "unit_amount": want.unit_amount,
                },
                "quantity": want.quantity,
                "metadata": {"plan_code": want.plan_code},
            }
        )
    changes.extend({"id": have.item_id, "deleted": True} for have in unmatched)
    return changes
