"""The Stripe provider's route: its webhook, a signed event handed to the core's settlement.

Served at ``/api/payments/stripe/webhook`` and at ``/api/stripe/webhook``, the URL the README
has told operators to set in the Stripe dashboard (kept: endpoints configured there keep working)."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from core.licensing import Licensing
from payments.stripe.gateway import StripeGateway, WebhookSignatureError

log = logging.getLogger(__name__)

WEBHOOK = "/api/payments/stripe/webhook"
LEGACY_WEBHOOK = "/api/stripe/webhook"


class StripeWebhook:
    """``POST`` of a Stripe event: its signature verified (400 when it does not match), then
    settled once per event id; 2xx for every signed event, so that Stripe does not retry it."""

    def __init__(self, lic: Licensing, gateway: StripeGateway):
        self.lic = lic
        self.gateway = gateway

    async def handle(self, request: web.Request) -> web.Response:
        payload = await request.read()
        try:
            event = self.gateway.parse_webhook(payload, request.headers.get("Stripe-Signature", ""))
        except WebhookSignatureError as e:
            log.warning("stripe webhook refused: %s", e)
            return web.json_response({"error": "invalid signature"}, status=400)
        result = await asyncio.to_thread(self.lic.settlement.handle_payment_event, event)
        log.info("stripe event %s (%s) -> %s", event.event_id, event.kind, result.result)
        return web.json_response({"received": True, "result": result.result})


def routes(lic: Licensing, gateway: StripeGateway) -> list[web.AbstractRouteDef]:
    webhook = StripeWebhook(lic, gateway)
    return [web.post(WEBHOOK, webhook.handle), web.post(LEGACY_WEBHOOK, webhook.handle)]
