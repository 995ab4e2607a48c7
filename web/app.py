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
from core.payments import SandboxGateway
from core.service import Licensing
from core.views import PayPage
from web.pay_pages import content_security_policy, new_nonce, page_locale, render_pay_page

log = logging.getLogger(__name__)

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
    return _html(request, await asyncio.to_thread(request.app[LICENSING].pay_page, token), token)


async def pay_post(request: web.Request) -> web.Response:
    token = request.match_info["token"]
    lic = request.app[LICENSING]
    try:
        form = await request.post()
    except (ValueError, LookupError, HttpProcessingError) as e:  # no boundary, a bad part, bytes that are
        # not the charset or an unknown charset: no browser sends these; the page as it is, nothing done
        log.info("pay page: unreadable form (%s)", type(e).__name__)
        return _html(request, await asyncio.to_thread(lic.pay_page, token), token, status=400)
    action = form.get("action")
    if action == "pay":
        page = await asyncio.to_thread(lic.sandbox_pay, token)
    elif action == "cancel":
        page = await asyncio.to_thread(lic.sandbox_cancel, token)
    else:
        page = await asyncio.to_thread(lic.pay_page, token)
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
    result = await asyncio.to_thread(request.app[LICENSING].handle_payment_event, event)
    log.info("stripe event %s (%s) -> %s", event.event_id, event.kind, result.result)
    return web.json_response({"received": True, "result": result.result})


def create_app(settings: Settings, licensing: Licensing | None = None, *,
               background: bool = False) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
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
