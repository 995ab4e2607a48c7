"""The Stripe payment provider: Checkout Sessions, a signed webhook, subscription sync and
amounts carried to the next invoice. Naming it loads no SDK: ``gateway`` and ``routes`` do."""

from __future__ import annotations

from core.payments import LinkTraits
from payments.provider import Provider, ProviderConfigError

# A Checkout Session id is no credential (the receipt shows it); closing one is a call to Stripe.
LINK_TRAITS = LinkTraits()


def _gateway(settings):
    from payments.stripe.gateway import StripeGateway

    if not settings.stripe_api_key or not settings.stripe_webhook_secret:
        raise ProviderConfigError("PAYMENTS=stripe needs STRIPE_API_KEY and STRIPE_WEBHOOK_SECRET in the environment.")
    return StripeGateway(settings.stripe_api_key.get_secret_value(),
                         settings.stripe_webhook_secret.get_secret_value(), api_base=settings.stripe_api_base)


def _routes(lic, gateway):
    from payments.stripe.webhook import routes

    return routes(lic, gateway)


PROVIDER = Provider(name="stripe", link_traits=LINK_TRAITS, gateway=_gateway, routes=_routes)
