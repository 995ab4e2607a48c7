"""The web routes: health, sandbox payment pages, the Stripe webhook, and the bounds on slow
clients. Handlers get what they use by constructor; the composition root (bootstrap.py) builds
them and assembles the aiohttp app. Wiring only: every decision is the core's."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from sqlalchemy import text

from core.licensing import Licensing
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
MAX_BODY = 1024 * 1024  # bytes: the largest request body (client_max_size)

class Health:
    """``GET /healthz``: the database answers, and which payments are on."""

    def __init__(self, lic: Licensing, payments: str):
        self.lic = lic
        self.payments = payments

    async def handle(self, request: web.Request) -> web.Response:
        def ping():
            with self.lic.db.read() as s:
                s.execute(text("SELECT 1"))

        try:
            await asyncio.to_thread(ping)
        except Exception:
            log.exception("health check: database unreachable")
            return web.json_response({"status": "error", "database": "unreachable"}, status=503)
        return web.json_response({"status": "ok", "payments": self.payments})


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


class PayPages:
    """``/pay/{token}``: the sandbox payment page (GET) and its Pay / Cancel buttons (POST)."""

    def __init__(self, lic: Licensing):
        self.lic = lic

    async def get(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        return _html(request, await asyncio.to_thread(self.lic.sandbox.pay_page, token), token)

    async def post(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        lic = self.lic
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


class StripeWebhook:
    """``POST /api/stripe/webhook``: a signed Stripe event, handed to the core (404 unless
    ``PAYMENTS=stripe``)."""

    def __init__(self, lic: Licensing, gateway=None):
        self.lic = lic
        self.gateway = gateway  # the Stripe gateway, or None

    async def handle(self, request: web.Request) -> web.Response:
        gateway = self.gateway
        if gateway is None:
            return web.json_response({"error": "Stripe payments are not enabled on this server."}, status=404)
        from gateways.stripe_gateway import WebhookSignatureError

        payload = await request.read()
        try:
            event = gateway.parse_webhook(payload, request.headers.get("Stripe-Signature", ""))
        except WebhookSignatureError as e:
            log.warning("stripe webhook refused: %s", e)
            return web.json_response({"error": "invalid signature"}, status=400)
        result = await asyncio.to_thread(self.lic.settlement.handle_payment_event, event)
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
