"""What the core must know of a Stripe link without loading the SDK (the package and its gateway
both name it)."""

from __future__ import annotations

from core.payments import LinkTraits

# A Checkout Session id is no credential (the receipt shows it); closing one is a call to Stripe.
LINK_TRAITS = LinkTraits()
