"""The Teams transport: the adapter (cached connector clients, one pooled session), the
activity handler behind its turn guards, the notifier, and the ``/api/messages`` endpoint
behind the request guards (bot/guards.py). Built by the composition root (bootstrap.py),
which mounts :meth:`BotTransport.messages` and runs :meth:`BotTransport.close` at shutdown."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from aiohttp import web
from botbuilder.core import CardFactory, MessageFactory, TurnContext
from botbuilder.core.serializer_helper import serializer_helper
from botbuilder.integration.aiohttp import CloudAdapter

from bot.auth import botbuilder_settings, channel_issuer, install_log_redaction, settings_secrets
from bot.connector import LicenseDeskAuthentication
from bot.guards import Inbound, request_chain, request_steps, turn_guards
from bot.handler import LicenseDeskBot
from bot.notifier import Notifier
from bot.ratelimit import RateLimiter
from cards import common
from core.config import Settings
from core.licensing import Licensing
from dialogs.router import Router

log = logging.getLogger(__name__)


def bot_config(settings: Settings) -> SimpleNamespace:
    return SimpleNamespace(
        APP_ID=settings.app_id,
        APP_PASSWORD=settings.app_password.get_secret_value(),
        APP_TYPE="SingleTenant" if settings.app_tenant_id else "MultiTenant",
        APP_TENANTID=settings.app_tenant_id,
        **botbuilder_settings(settings),  # endpoints (bot/auth.py): Microsoft's unless configured
    )


def build_adapter(settings: Settings) -> CloudAdapter:
    # cached connector clients and credentials, one pooled aiohttp session (bot/connector.py)
    adapter = CloudAdapter(LicenseDeskAuthentication(bot_config(settings)))

    async def on_error(tc: TurnContext, error: Exception):
        log.error("unhandled error in turn (activity %s): %s", tc.activity.id, type(error).__name__,
                  exc_info=error)
        try:
            await tc.send_activity(MessageFactory.attachment(
                CardFactory.adaptive_card(common.apology_card(tc.activity.locale))))
        except Exception:
            log.warning("could not send the apology card (activity %s)", tc.activity.id)

    adapter.on_turn_error = on_error
    return adapter


class BotTransport:
    """What serves Teams: ``adapter``, ``bot`` (the activity handler), ``notifier``, and the
    ``messages`` aiohttp handler (the request guards, then the turn)."""

    def __init__(self, settings: Settings, lic: Licensing, router: Router, *, adapter: CloudAdapter | None = None):
        self.adapter = adapter or build_adapter(settings)
        self.bot = LicenseDeskBot(router, lic, guards=turn_guards(
            lic, limiter=RateLimiter.from_settings(settings), allowed_tenants=settings.allowed_tenant_ids))
        self.notifier = Notifier(self.adapter, router, lic, app_id=settings.app_id)
        production = bool(settings.app_id)  # production: every request carries the Bot Connector's JWT
        self.messages = request_chain(
            request_steps(self.adapter.bot_framework_authentication, production=production,
                          issuer=channel_issuer(settings)),
            self._turn)
        # no secret, token or card payload in any log
        self._unredact = install_log_redaction(settings_secrets(settings))

    async def _turn(self, inbound: Inbound) -> web.StreamResponse:
        """The guarded activity's turn, and its answer as the HTTP response."""
        invoke_response = await self.adapter.process_activity(inbound.auth, inbound.activity, self.bot.on_turn)
        self.notifier.poke()  # a turn may have queued notifications (debounced: a claim per 0.25 s at most)
        if invoke_response is None:
            return web.Response(status=201)
        payload = invoke_response.body
        if payload is None:  # an invoke answered without a body (bot/invoke.py)
            return web.Response(status=invoke_response.status or 200)
        if not isinstance(payload, dict | list):
            payload = serializer_helper(payload)  # botbuilder's own models
        return web.json_response(payload, status=invoke_response.status or 200)

    async def close(self) -> None:
        """Close the shared connector session; take the log redaction off."""
        try:
            await self.adapter.bot_framework_authentication.close()
        finally:
            self._unredact()
