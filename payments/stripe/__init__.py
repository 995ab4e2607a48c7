"""The Stripe payment provider: Checkout Sessions, a signed webhook, subscription sync and
amounts carried to the next invoice. Naming it loads no SDK: ``gateway`` and ``routes`` do."""

from __future__ import annotations

from payments.provider import Provider, ProviderConfigError
from payments.stripe.traits import LINK_TRAITS


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
