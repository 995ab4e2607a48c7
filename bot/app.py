"""Mounts the Teams transport on the aiohttp app: ``POST /api/messages`` and the notifier."""

from __future__ import annotations

import ipaddress
import json
import logging
from types import SimpleNamespace

from aiohttp import web
from botbuilder.core import TurnContext
from botbuilder.core.serializer_helper import serializer_helper
from botbuilder.integration.aiohttp import CloudAdapter, ConfigurationBotFrameworkAuthentication
from botbuilder.schema import Activity

from bot.handler import LicenseDeskBot
from bot.notifier import Notifier
from cards import common
from core.config import Settings
from core.service import Licensing
from dialogs.router import Router
from web.app import SETTINGS

log = logging.getLogger(__name__)

BOT = web.AppKey("bot", LicenseDeskBot)
ADAPTER = web.AppKey("adapter", CloudAdapter)
NOTIFIER = web.AppKey("notifier", Notifier)


def bot_config(settings: Settings) -> SimpleNamespace:
    return SimpleNamespace(
        APP_ID=settings.app_id,
        APP_PASSWORD=settings.app_password.get_secret_value(),
        APP_TYPE="SingleTenant" if settings.app_tenant_id else "MultiTenant",
        APP_TENANTID=settings.app_tenant_id,
    )


def build_adapter(settings: Settings) -> CloudAdapter:
    adapter = CloudAdapter(ConfigurationBotFrameworkAuthentication(bot_config(settings)))

    async def on_error(tc: TurnContext, error: Exception):
        log.error("unhandled error in turn (activity %s): %s", tc.activity.id, type(error).__name__,
                  exc_info=error)
        try:
            from botbuilder.core import CardFactory, MessageFactory

            await tc.send_activity(MessageFactory.attachment(
                CardFactory.adaptive_card(common.apology_card(tc.activity.locale))))
        except Exception:
            log.warning("could not send the apology card (activity %s)", tc.activity.id)

    adapter.on_turn_error = on_error
    return adapter


def _loopback(remote: str | None) -> bool:
    try:
        return ipaddress.ip_address(remote or "").is_loopback
    except ValueError:
        return False


async def messages(request: web.Request) -> web.StreamResponse:
    settings: Settings = request.app[SETTINGS]
    if not settings.app_id and not _loopback(request.remote):
        return web.json_response({"error": "Local mode (no MicrosoftAppId) accepts loopback callers only."},
                                 status=403)
    if "application/json" not in request.headers.get("Content-Type", ""):
        return web.json_response({"error": "Expected application/json."}, status=415)
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return web.json_response({"error": "The body is not valid JSON."}, status=400)
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        return web.json_response({"error": "The body is not an activity."}, status=400)
    try:
        activity = Activity().deserialize(body)
    except (ValueError, TypeError, AttributeError):  # msrest's DeserializationError is a ValueError
        return web.json_response({"error": "The body is not a valid activity."}, status=400)
    try:
        invoke_response = await request.app[ADAPTER].process_activity(
            request.headers.get("Authorization", ""), activity, request.app[BOT].on_turn)
    except PermissionError:
        return web.json_response({"error": "Unauthorized."}, status=401)
    request.app[NOTIFIER].wake.set()  # a turn may have queued notifications
    if invoke_response is None:
        return web.Response(status=201)
    payload = invoke_response.body
    if payload is not None and not isinstance(payload, dict | list):
        payload = serializer_helper(payload)  # botbuilder's own models (other invokes)
    return web.json_response(payload, status=invoke_response.status or 200)


def install_bot(app: web.Application, settings: Settings, lic: Licensing, *, background: bool = False) -> None:
    router = Router(lic)
    adapter = build_adapter(settings)
    app[ADAPTER] = adapter
    app[BOT] = LicenseDeskBot(router, lic, allowed_tenants=settings.allowed_tenant_ids)
    app[NOTIFIER] = Notifier(adapter, router, lic, app_id=settings.app_id)
    app.router.add_post("/api/messages", messages)
    if background:
        from web.workers import background as run_in_background

        app.cleanup_ctx.append(run_in_background(lambda: app[NOTIFIER].run_forever()))
