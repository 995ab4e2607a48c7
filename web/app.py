"""The aiohttp application: health, sandbox payment pages, provider webhooks, and (when the
Teams transport is installed) /api/messages. Wiring only: every decision is the core's."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from sqlalchemy import text

from core.catalog import Catalog
from core.config import Settings
from core.db import Database
from core.licensing import Licensing
from core.payments import SandboxGateway
from core.views import PayPage
from web.pay_pages import content_security_policy, new_nonce, page_locale, render_pay_page

log = logging.getLogger(__name__)

# Slow clients (slow loris) are bounded in both phases of a request. Headers: aiohttp (3.14)
# arms its keep-alive timer when a connection opens and closes a connection still waiting for
# a complete request when it fires, so ``keepalive_timeout`` bounds the header phase (and the
# idle time between requests); run_app's default is 75 s. Body: aiohttp has no timeout of its
# own for a handler's body read, :func:`bounded_body` gives one.
HEADER_SECONDS = 15.0
BODY_SECONDS = 20.0
SERVER_OPTIONS = {"keepalive_timeout": HEADER_SECONDS}  # for web.run_app / web.AppRunner

LICENSING = web.AppKey("licensing", Licensing)
SETTINGS = web.AppKey("settings", Settings)
STRIPE = web.AppKey("stripe", object)


def build_gateway(settings: Settings):
    if settings.payments == "stripe":
        from gateways.stripe_gateway import StripeGateway

        if not settings.stripe_api_key or not settings.stripe_webhook_secret:
            raise SystemExit("PAYMENTS=stripe needs STRIPE_API_KEY and STRIPE_WEBHOOK_SECRET in the environment.")
        return StripeGateway(settings.stripe_api_key.get_secret_value(),
                             settings.stripe_webhook_secret.get_secret_value(), api_base=settings.stripe_api_base)
    return SandboxGateway(settings.public_base_url)


def build_licensing(settings: Settings, db: Database | None = None, gateway=None, *,
                    with_gateway: bool = True) -> Licensing:
    if gateway is None and with_gateway:
        gateway = build_gateway(settings)
    return Licensing(db or Database(settings.database_url), Catalog.load(), gateway,
                     quote_ttl=timedelta(minutes=settings.quote_ttl_minutes))


async def healthz(request: web.Request) -> web.Response:
    lic = request.app[LICENSING]

    def ping():
        with lic.db.read() as s:
            s.execute(text("SELECT 1"))

    try:
        await asyncio.to_thread(ping)
    except Exception:
        log.exception("health check: database unreachable")
        return web.json_response({"status": "error", "database": "unreachable"}, status=503)
    return web.json_response({"status": "ok", "payments": request.app[SETTINGS].payments})


def _html(request: web.Request, page: PayPage, token: str, *, status: int | None = None) -> web.Response:
    """The payment page in the language the browser asks for (Accept-Language; English by default),
    its style and script allowed by this response's nonce only."""
    status = status or (404 if page.state == "unknown" else 200)
    locale = page_locale(request.headers.get("Accept-Language"))
    nonce = new_nonce()
    return web.Response(text=render_pay_page(page, token, locale, nonce=nonce), content_type="text/html",
                        status=status,
                        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
                                 "X-Frame-Options": "DENY", "Content-Language": locale.split("-")[0],
                                 "Vary": "Accept-Language", "Content-Security-Policy": content_security_policy(nonce)})


async def pay_get(request: web.Request) -> web.Response:
    token = request.match_info["token"]
    return _html(request, await asyncio.to_thread(request.app[LICENSING].sandbox.pay_page, token), token)


async def pay_post(request: web.Request) -> web.Response:
    token = request.match_info["token"]
    lic = request.app[LICENSING]
    try:
        form = await request.post()
    except (ValueError, LookupError, HttpProcessingError) as e:  # no boundary, a bad part, bytes that are
        # not the charset or an unknown charset: no browser sends these; the page as it is, nothing done
        log.info("pay page: unreadable form (%s)", type(e).__name__)
        return _html(request, await asyncio.to_thread(lic.sandbox.pay_page, token), token, status=400)
    action = form.get("action")
    if action == "pay":
        page = await asyncio.to_thread(lic.sandbox.sandbox_pay, token)
    elif action == "cancel":
        page = await asyncio.to_thread(lic.sandbox.sandbox_cancel, token)
    else:
        page = await asyncio.to_thread(lic.sandbox.pay_page, token)
    # Post/Redirect/Get would lose the outcome message on refresh; the page shows the state anyway.
    return _html(request, page, token)


async def stripe_webhook(request: web.Request) -> web.Response:
    gateway = request.app.get(STRIPE)
    if gateway is None:
        return web.json_response({"error": "Stripe payments are not enabled on this server."}, status=404)
    from gateways.stripe_gateway import WebhookSignatureError

    payload = await request.read()
    try:
        event = gateway.parse_webhook(payload, request.headers.get("Stripe-Signature", ""))
    except WebhookSignatureError as e:
        log.warning("stripe webhook refused: %s", e)
        return web.json_response({"error": "invalid signature"}, status=400)
    result = await asyncio.to_thread(request.app[LICENSING].settlement.handle_payment_event, event)
    log.info("stripe event %s (%s) -> %s", event.event_id, event.kind, result.result)
    return web.json_response({"received": True, "result": result.result})


def _route(request: web.Request) -> str:
    """The route of a request for the log ("/pay/{token}"): a path can hold a secret."""
    info = request.match_info.route.resource
    return f"{request.method} {info.canonical if info is not None else '?'}"


@web.middleware
async def bounded_body(request: web.Request, handler):
    """A request body not received within BODY_SECONDS closes its connection; a client that goes
    away in the middle of its body is one log line (aiohttp logs a traceback per request)."""
    if not request.body_exists:
        return await handler(request)
    too_slow = False

    def drop_if_incomplete() -> None:
        nonlocal too_slow
        if not request.content.is_eof() and request.transport is not None:
            too_slow = True
            request.transport.close()  # the pending read raises ConnectionResetError

    timer = asyncio.get_running_loop().call_later(BODY_SECONDS, drop_if_incomplete)
    try:
        return await handler(request)
    except ConnectionResetError:  # aiohttp's "Connection lost" while reading the body
        if request.content.is_eof():  # the body was all there: another connection's reset (an outgoing call)
            raise
        if too_slow:
            log.warning("%s from %s: body not received within %.0f s, connection closed", _route(request),
                        request.remote, BODY_SECONDS)
        else:
            log.info("%s from %s: the client went away before its body was received", _route(request),
                     request.remote)
        return web.Response(status=408)  # (never sent: the connection is gone)
    finally:
        timer.cancel()


def create_app(settings: Settings, licensing: Licensing | None = None, *,
               background: bool = False) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024, middlewares=[bounded_body])
    lic = licensing or build_licensing(settings)
    app[SETTINGS] = settings
    app[LICENSING] = lic
    if lic.gateway is not None and getattr(lic.gateway, "name", "") == "stripe":
        app[STRIPE] = lic.gateway
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/pay/{token}", pay_get)
    app.router.add_post("/pay/{token}", pay_post)
    app.router.add_post("/api/stripe/webhook", stripe_webhook)
    from bot.app import install_bot

    install_bot(app, settings, lic, background=background)
    from web.audit_export import install_audit_export

    install_audit_export(app, settings, lic)  # GET /audit/export/{token}; after the bot: gives it the links
    if background:
        from web.workers import background as run_in_background
        from web.workers import billing_loop, rollover_loop

        app.cleanup_ctx.append(run_in_background(lambda: rollover_loop(lic), lambda: billing_loop(lic)))
    return app
