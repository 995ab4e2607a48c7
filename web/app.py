"""The aiohttp application: health, sandbox payment pages, provider webhooks, and (when the
Teams transport is installed) /api/messages. Wiring only: every decision is the core's."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path

from aiohttp import web
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import text

from core.catalog import Catalog
from core.config import Settings
from core.db import Database
from core.money import money
from core.payments import SandboxGateway
from core.service import Licensing
from core.views import PayPage

log = logging.getLogger(__name__)

LICENSING = web.AppKey("licensing", Licensing)
SETTINGS = web.AppKey("settings", Settings)
STRIPE = web.AppKey("stripe", object)

_templates = Environment(loader=FileSystemLoader(Path(__file__).with_name("templates")),
                         autoescape=select_autoescape(["html"]))

_STATES = {
    "payable": ("Review and pay", None, ""),
    "paid": ("Paid", "Payment received. The licenses are updated; everyone concerned is told in Teams.", "paid"),
    "expired": ("Quote expired", "This quote has expired and can no longer be paid. Nothing was charged. "
                "Prepare a new quote in Teams to see today's amounts.", "bad"),
    "cancelled": ("Quote cancelled", "This quote was cancelled. Nothing was charged.", "bad"),
    "refund_needed": ("Payment received, not applied", "The payment arrived after the licenses changed, so it "
                      "could not be applied. It will be refunded; your administrator has been told.", "bad"),
    "unknown": ("Link not found", "This payment link is not valid. Check that you copied the whole link, or "
                "prepare a new quote in Teams.", "bad"),
}


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


def render_pay_page(page: PayPage, token: str) -> str:
    title, message, css = _STATES[page.state]
    ctx = {"title": title, "message": message, "state": page.state, "state_class": css, "token": token,
           "quote": page.quote, "account_name": page.account_name}
    q = page.quote
    if q is not None:
        cur = q.currency
        lines = []
        for ln in q.lines:
            label = {"credit": f"Unused time on {ln.quantity} × {ln.plan_name}",
                     "charge": f"Remaining time on {ln.quantity} × {ln.plan_name}",
                     "purchase": f"{ln.quantity} × {ln.plan_name} ({ln.interval}ly)"}[ln.kind]
            lines.append({"label": label, "amount": money(ln.gross, cur)})
        pct = f" ({q.discount_percent.normalize():f} %)" if q.discount_percent is not None else ""
        ctx.update(lines=lines, discount=money(q.discount, cur), due_now=money(q.due_now, cur),
                   discount_label=f"{q.discount_label or 'Discount'}{pct}", renewal=money(q.renewal_amount, cur),
                   renewal_date=f"{q.renewal_date:%Y-%m-%d}", expires=f"{q.expires_at:%Y-%m-%d %H:%M}")
    return _templates.get_template("pay.html").render(**ctx)


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


def _html(page: PayPage, token: str) -> web.Response:
    status = 404 if page.state == "unknown" else 200
    return web.Response(text=render_pay_page(page, token), content_type="text/html", status=status,
                        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
                                 "X-Frame-Options": "DENY"})


async def pay_get(request: web.Request) -> web.Response:
    token = request.match_info["token"]
    return _html(await asyncio.to_thread(request.app[LICENSING].pay_page, token), token)


async def pay_post(request: web.Request) -> web.Response:
    token = request.match_info["token"]
    form = await request.post()
    lic = request.app[LICENSING]
    action = form.get("action")
    if action == "pay":
        page = await asyncio.to_thread(lic.sandbox_pay, token)
    elif action == "cancel":
        page = await asyncio.to_thread(lic.sandbox_cancel, token)
    else:
        page = await asyncio.to_thread(lic.pay_page, token)
    # Post/Redirect/Get would lose the outcome message on refresh; the page shows the state anyway.
    return _html(page, token)


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
