"""Mounts the Teams transport on the aiohttp app: ``POST /api/messages`` and the notifier."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from aiohttp import web
from botbuilder.core import TurnContext
from botbuilder.core.serializer_helper import serializer_helper
from botbuilder.integration.aiohttp import CloudAdapter
from botbuilder.schema import Activity
from botframework.connector.auth import AuthenticateRequestResult

from bot.auth import (
    AuthUnavailable,
    Unauthorized,
    authenticate,
    botbuilder_settings,
    channel_issuer,
    check_bearer,
    install_log_redaction,
    is_loopback,
    local_service_url,
    settings_secrets,
)
from bot.connector import FastDeserializer, LicenseDeskAuthentication
from bot.handler import LicenseDeskBot
from bot.notifier import Notifier
from bot.ratelimit import RateLimiter
from cards import common
from core.config import Settings
from core.licensing import Licensing
from dialogs.router import Router
from web.app import SETTINGS

log = logging.getLogger(__name__)

BOT = web.AppKey("bot", LicenseDeskBot)
ADAPTER = web.AppKey("adapter", CloudAdapter)
NOTIFIER = web.AppKey("notifier", Notifier)
_read_activity = FastDeserializer(Activity)  # msrest's Activity.deserialize, same result, ~4x cheaper


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
            from botbuilder.core import CardFactory, MessageFactory

            await tc.send_activity(MessageFactory.attachment(
                CardFactory.adaptive_card(common.apology_card(tc.activity.locale))))
        except Exception:
            log.warning("could not send the apology card (activity %s)", tc.activity.id)

    adapter.on_turn_error = on_error
    return adapter


def _unauthorized(request: web.Request, reason: str) -> web.Response:
    """401, saying nothing that helps an attacker; the reason goes to the log (never the token)."""
    log.warning("refused an unauthenticated request to %s from %s: %s", request.path, request.remote, reason)
    return web.json_response({"error": "Unauthorized."}, status=401, headers={"WWW-Authenticate": "Bearer"})


def _text(value) -> str | None:
    return value if isinstance(value, str) else None


async def _authenticate(request: web.Request, adapter: CloudAdapter, activity: Activity, header: str,
                        settings: Settings) -> AuthenticateRequestResult | web.Response:
    """botbuilder's authentication, every failure mapped (it raises 500s for some) and the checks
    it skips added (bot/auth.py); a refusal is the response to send."""
    try:
        return await authenticate(adapter.bot_framework_authentication, activity, header,
                                  required=bool(settings.app_id), issuer=channel_issuer(settings))
    except Unauthorized as e:
        return _unauthorized(request, e.reason)
    except AuthUnavailable as e:
        log.error("cannot check the token of a request: the OpenID metadata is unreachable (%s)", e)
        return web.json_response({"error": "Service unavailable; try again later."}, status=503)


async def messages(request: web.Request) -> web.StreamResponse:
    settings: Settings = request.app[SETTINGS]
    production = bool(settings.app_id)  # production: every request carries the Bot Connector's JWT
    if not production and not is_loopback(request.remote):
        return web.json_response({"error": "Local mode (no MicrosoftAppId) accepts loopback callers only."},
                                 status=403)
    header = request.headers.get("Authorization", "")
    if production:  # a missing or malformed token is refused before the body is read
        try:
            check_bearer(header)
        except Unauthorized as e:
            return _unauthorized(request, e.reason)
    if "application/json" not in request.headers.get("Content-Type", ""):
        return web.json_response({"error": "Expected application/json."}, status=415)
    try:
        body = await request.json()
    except (ValueError, LookupError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, an integer of
        # over 4,300 digits (CPython's int_max_str_digits); LookupError: an unknown charset; too deeply nested
        return web.json_response({"error": "The body is not valid JSON."}, status=400)
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        return web.json_response({"error": "The body is not an activity."}, status=400)
    adapter = request.app[ADAPTER]
    if production:  # the token first: the body of an unauthenticated request is never deserialized
        envelope = Activity(type=body["type"], service_url=_text(body.get("serviceUrl")),
                            channel_id=_text(body.get("channelId")))
        auth = await _authenticate(request, adapter, envelope, header, settings)
        if isinstance(auth, web.Response):
            return auth
    try:  # ``value`` (card data, free-form JSON) is kept as parsed: msrest's walk costs ~30 µs an element
        activity = _read_activity({k: v for k, v in body.items() if k != "value"})
        activity.value = body.get("value")
    except (ValueError, TypeError, AttributeError, RecursionError):  # msrest's DeserializationError: ValueError
        return web.json_response({"error": "The body is not a valid activity."}, status=400)
    if not production:  # botbuilder's anonymous path (it reads the activity)
        if not local_service_url(activity.service_url):  # replies and stored addresses: loopback only
            return web.json_response({"error": "Local mode (no MicrosoftAppId) replies to a loopback http(s) "
                                               "serviceUrl only."}, status=400)
        auth = await _authenticate(request, adapter, activity, header, settings)
        if isinstance(auth, web.Response):
            return auth
    invoke_response = await adapter.process_activity(auth, activity, request.app[BOT].on_turn)
    request.app[NOTIFIER].poke()  # a turn may have queued notifications (debounced: a claim per 0.25 s at most)
    if invoke_response is None:
        return web.Response(status=201)
    payload = invoke_response.body
    if payload is None:  # an invoke answered without a body (bot/invoke.py)
        return web.Response(status=invoke_response.status or 200)
    if not isinstance(payload, dict | list):
        payload = serializer_helper(payload)  # botbuilder's own models
    return web.json_response(payload, status=invoke_response.status or 200)


def build_directory(settings: Settings):
    """The tenant's directory through Microsoft Graph when GRAPH_ENABLED, else None."""
    if not settings.graph_enabled:
        return None
    if not settings.app_id or not settings.app_password.get_secret_value():
        raise SystemExit("GRAPH_ENABLED needs MicrosoftAppId and MicrosoftAppPassword (the app's Graph credentials).")
    from gateways.graph_directory import GraphDirectory

    return GraphDirectory.from_settings(settings)


def install_bot(app: web.Application, settings: Settings, lic: Licensing, *, background: bool = False) -> None:
    router = Router(lic)
    router.directory = build_directory(settings)  # the assign picker's Graph search (None: the account only)
    adapter = build_adapter(settings)
    app[ADAPTER] = adapter
    app.on_cleanup.append(adapter.bot_framework_authentication.on_cleanup)  # closes the shared session
    unredact = install_log_redaction(settings_secrets(settings))  # no secret, token or card payload in any log

    async def _unredact(_app) -> None:
        unredact()

    app.on_cleanup.append(_unredact)
    app[BOT] = LicenseDeskBot(router, lic, allowed_tenants=settings.allowed_tenant_ids,
                              limiter=RateLimiter.from_settings(settings))
    app[NOTIFIER] = Notifier(adapter, router, lic, app_id=settings.app_id)
    app.router.add_post("/api/messages", messages)
    if background:
        from web.workers import background as run_in_background

        app.cleanup_ctx.append(run_in_background(lambda: app[NOTIFIER].run_forever()))
