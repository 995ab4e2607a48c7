"""The sandbox provider's routes: ``/pay/{token}``, its payment page (GET) and its Pay / Cancel
buttons (POST). The path is the one its links carry (links already sent keep working)."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from cards.web_locale import page_locale
from core.licensing import Licensing
from payments.sandbox.checkout import PayPage, SandboxCheckout
from payments.sandbox.pages import content_security_policy, new_nonce, render_pay_page

log = logging.getLogger(__name__)

PAY_PAGE = "/pay/{token}"


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

    def __init__(self, checkout: SandboxCheckout):
        self.checkout = checkout

    async def get(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        return _html(request, await asyncio.to_thread(self.checkout.page, token), token)

    async def post(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        checkout = self.checkout
        try:
            form = await request.post()
        except (ValueError, LookupError, HttpProcessingError) as e:  # no boundary, a bad part, bytes that are
            # not the charset or an unknown charset: no browser sends these; the page as it is, nothing done
            log.info("pay page: unreadable form (%s)", type(e).__name__)
            return _html(request, await asyncio.to_thread(checkout.page, token), token, status=400)
        action = form.get("action")
        if action == "pay":
            page = await asyncio.to_thread(checkout.pay, token)
        elif action == "cancel":
            page = await asyncio.to_thread(checkout.cancel, token)
        else:
            page = await asyncio.to_thread(checkout.page, token)
        # Post/Redirect/Get would lose the outcome message on refresh; the page shows the state anyway.
        return _html(request, page, token)


def routes(lic: Licensing, gateway) -> list[web.AbstractRouteDef]:
    pages = PayPages(SandboxCheckout(lic))
    return [web.get(PAY_PAGE, pages.get), web.post(PAY_PAGE, pages.post)]
