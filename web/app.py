"""The web routes: health and the bounds on slow clients (each payment provider's routes are
its own, in ``payments/``). Handlers get what they use by constructor; the composition root
(bootstrap.py) builds them and assembles the aiohttp app. Wiring only: every decision is the
core's."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from sqlalchemy import text

from core.licensing import Licensing

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
