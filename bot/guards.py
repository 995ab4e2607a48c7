"""The transport guards of ``POST /api/messages``: one chain, each guard applied once.

Request guards (:func:`request_chain`), before any turn, in this order:

* production (``MicrosoftAppId`` set): **bearer presence** (401 before the body is read) →
  the body read (415 / 400) → **JWT** (botbuilder's validation plus the checks it skips,
  against the envelope: the body of an unauthenticated request is never deserialized) → the
  activity deserialized;
* local mode (no app id): **loopback caller** (403) → the body read → the activity
  deserialized → **loopback serviceUrl** (400: replies and stored addresses go to this machine
  only) → **JWT** (botbuilder's anonymous path).

Turn guards (:func:`turn_chain`), run by the activity handler on every activity once it is
cleaned: **rate limit** per user, then **tenant allow-list**. The limit comes first so that a
flood from a tenant that is refused writes a few audit rows, not one per request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from botbuilder.core import TurnContext
from botbuilder.schema import Activity
from botframework.connector.auth import AuthenticateRequestResult, BotFrameworkAuthentication

from bot import invoke
from bot.auth import AuthUnavailable, Unauthorized, authenticate, check_bearer, is_loopback, local_service_url
from bot.ratelimit import ACTION, SEARCH, RateLimited, RateLimiter, slow_down_text
from bot.recent import Recent
from bot.replies import answer, reply
from bot.serialization import FastDeserializer
from cards import common
from cards.i18n import T
from core.errors import InvalidInput, Message
from core.kinds import AuditAction
from core.licensing import Licensing
from dialogs.router import Turn

log = logging.getLogger(__name__)

NOT_AVAILABLE = Message("This bot is not available to your organisation.")
_read_activity = FastDeserializer(Activity)  # msrest's Activity.deserialize, same result, ~4x cheaper


# ============================================================================ request guards


@dataclass
class Inbound:
    """A request to ``/api/messages`` as the chain learns it."""

    request: web.Request
    header: str  # the Authorization header ("" when absent)
    body: dict | None = None
    activity: Activity | None = None
    auth: AuthenticateRequestResult | None = None


Handler = Callable[[Inbound], Awaitable[web.StreamResponse]]
Step = Callable[[Inbound, Handler], Awaitable[web.StreamResponse]]


def unauthorized(request: web.Request, reason: str) -> web.Response:
    """401, saying nothing that helps an attacker; the reason goes to the log (never the token)."""
    log.warning("refused an unauthenticated request to %s from %s: %s", request.path, request.remote, reason)
    return web.json_response({"error": "Unauthorized."}, status=401, headers={"WWW-Authenticate": "Bearer"})


async def loopback_caller(inbound: Inbound, call_next: Handler) -> web.StreamResponse:
    """Local mode: nothing vouches for a caller, so only this machine may call."""
    if not is_loopback(inbound.request.remote):
        return web.json_response({"error": "Local mode (no MicrosoftAppId) accepts loopback callers only."},
                                 status=403)
    return await call_next(inbound)


async def bearer_present(inbound: Inbound, call_next: Handler) -> web.StreamResponse:
    """Production: a missing or malformed token is refused before the body is read."""
    try:
        check_bearer(inbound.header)
    except Unauthorized as e:
        return unauthorized(inbound.request, e.reason)
    return await call_next(inbound)


async def read_body(inbound: Inbound, call_next: Handler) -> web.StreamResponse:
    """The body: a JSON object with a ``type`` (an activity's shape), else 415 / 400."""
    request = inbound.request
    if "application/json" not in request.headers.get("Content-Type", ""):
        return web.json_response({"error": "Expected application/json."}, status=415)
    try:
        body = await request.json()
    except (ValueError, LookupError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, an integer of
        # over 4,300 digits (CPython's int_max_str_digits); LookupError: an unknown charset; too deeply nested
        return web.json_response({"error": "The body is not valid JSON."}, status=400)
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        return web.json_response({"error": "The body is not an activity."}, status=400)
    inbound.body = body
    return await call_next(inbound)


async def read_activity(inbound: Inbound, call_next: Handler) -> web.StreamResponse:
    """The activity deserialized; ``value`` (card data, free-form JSON) is kept as parsed:
    msrest's walk costs ~30 µs an element."""
    body = inbound.body
    try:
        activity = _read_activity({k: v for k, v in body.items() if k != "value"})
        activity.value = body.get("value")
    except (ValueError, TypeError, AttributeError, RecursionError):  # msrest's DeserializationError: ValueError
        return web.json_response({"error": "The body is not a valid activity."}, status=400)
    inbound.activity = activity
    return await call_next(inbound)


async def loopback_service_url(inbound: Inbound, call_next: Handler) -> web.StreamResponse:
    """Local mode: replies and stored addresses go to a loopback http(s) serviceUrl only."""
    if not local_service_url(inbound.activity.service_url):
        return web.json_response({"error": "Local mode (no MicrosoftAppId) replies to a loopback http(s) "
                                           "serviceUrl only."}, status=400)
    return await call_next(inbound)


def _text(value) -> str | None:
    return value if isinstance(value, str) else None


class Jwt:
    """botbuilder's authentication, every failure mapped (it raises 500s for some) and the checks
    it skips added (:func:`bot.auth.authenticate`). In production it runs on the envelope (type,
    serviceUrl, channelId) before the activity is deserialized."""

    def __init__(self, bfa: BotFrameworkAuthentication, *, required: bool, issuer: str):
        self.bfa = bfa
        self.required = required
        self.issuer = issuer

    async def __call__(self, inbound: Inbound, call_next: Handler) -> web.StreamResponse:
        activity = inbound.activity
        if activity is None:
            body = inbound.body
            activity = Activity(type=body["type"], service_url=_text(body.get("serviceUrl")),
                                channel_id=_text(body.get("channelId")))
        try:
            inbound.auth = await authenticate(self.bfa, activity, inbound.header, required=self.required,
                                              issuer=self.issuer)
        except Unauthorized as e:
            return unauthorized(inbound.request, e.reason)
        except AuthUnavailable as e:
            log.error("cannot check the token of a request: the OpenID metadata is unreachable (%s)", e)
            return web.json_response({"error": "Service unavailable; try again later."}, status=503)
        return await call_next(inbound)


def request_steps(bfa: BotFrameworkAuthentication, *, production: bool, issuer: str) -> list[Step]:
    """The request guards in their order (the module's docstring says why)."""
    jwt = Jwt(bfa, required=production, issuer=issuer)
    if production:
        return [bearer_present, read_body, jwt, read_activity]
    return [loopback_caller, read_body, read_activity, loopback_service_url, jwt]


def request_chain(steps: list[Step], endpoint: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """``steps`` around ``endpoint`` (which gets an :class:`Inbound` with its activity and auth)."""
    handler = endpoint
    for step in reversed(steps):
        handler = _link(step, handler)

    async def handle(request: web.Request) -> web.StreamResponse:
        return await handler(Inbound(request, request.headers.get("Authorization", "")))

    return handle


def _link(step: Step, call_next: Handler) -> Handler:
    async def run(inbound: Inbound) -> web.StreamResponse:
        return await step(inbound, call_next)

    return run


# ============================================================================ turn guards


TurnGuard = Callable[[TurnContext, str, Turn], Awaitable[bool]]  # (tc, kind, turn) -> answered here


class RateLimit:
    """A user over their rate limit: nothing is done; the first refusal of the window is
    audited and answered in words (bot/ratelimit.py)."""

    def __init__(self, limiter: RateLimiter, lic: Licensing):
        self.limiter = limiter
        self.lic = lic

    async def __call__(self, tc: TurnContext, kind: str, turn: Turn) -> bool:
        if kind not in ("message", "action", "search", "invoke"):
            return False
        a = tc.activity
        who = turn.actor.aad_object_id or str(getattr(a.from_property, "id", "") or "")[:128]
        verdict = await self.limiter.check(SEARCH if kind == "search" else ACTION, turn.actor.tenant_id, who,
                                           answer=kind)
        if verdict.allowed:
            return False
        await self._over_limit(tc, kind, turn, verdict.first)
        return True

    async def _over_limit(self, tc: TurnContext, kind: str, turn: Turn, first: bool) -> None:
        heading, message = slow_down_text(turn.locale)
        if first:
            a = tc.activity
            action = a.value.get("action") if kind == "action" and isinstance(a.value, dict) else None
            what = action.get("verb") if isinstance(action, dict) else (a.name if kind != "message" else None)
            limit = self.limiter.items[SEARCH if kind == "search" else ACTION]
            await asyncio.to_thread(self.lic.audit.record_refusal, turn.actor, AuditAction.RATE_LIMITED,
                                    RateLimited(Message("Over the rate limit ({limit}).", limit=limit)),
                                    f"{kind}:{str(what or '')[:64]}")
            log.warning("rate limit reached (%s, tenant %s, user %s)", kind, turn.actor.tenant_id,
                        turn.actor.aad_object_id)
        if kind == "message":
            if first:  # later messages of the window get no reply: a flood sends nothing out
                await reply(tc, common.error_card(turn.locale, message, heading=heading))
        elif kind == "action":  # Teams shows the text and leaves the card as it is
            await answer(tc, invoke.message_response(message))
        elif kind == "search":
            await answer(tc, invoke.search_response([]))
        else:
            await answer(tc, invoke.error_response(429, "TooManyRequests", message))


class TenantAllowList:
    """An activity of a tenant not in ``ALLOWED_TENANTS`` (every type): refused, audited,
    nothing done. Installs (installationUpdate + conversationUpdate) get one card, one audit;
    other unanswered activities are audited once in 5 minutes per tenant and conversation."""

    def __init__(self, allowed: frozenset[str], lic: Licensing):
        self.allowed = allowed
        self.lic = lic
        self._installs = Recent()
        self._refused_quietly = Recent()

    async def __call__(self, tc: TurnContext, kind: str, turn: Turn) -> bool:
        if turn.actor.tenant_id in self.allowed:
            return False
        conv = tc.activity.conversation.id if tc.activity.conversation else ""
        if kind == "message":
            await reply(tc, await asyncio.to_thread(self.refused, turn))
        elif kind == "action":
            await answer(tc, invoke.card_response(await asyncio.to_thread(self.refused, turn)))
        elif kind in ("search", "invoke"):
            await asyncio.to_thread(self.refused, turn)  # audited
            await answer(tc, invoke.search_response([]) if kind == "search"
                         else invoke.error_response(403, "Forbidden", NOT_AVAILABLE))
        elif kind == "install":
            if not self._installs.seen(f"{conv}|{turn.actor.aad_object_id}"):
                await reply(tc, await asyncio.to_thread(self.refused, turn))
        elif not self._refused_quietly.seen(f"{turn.actor.tenant_id}|{conv}|{tc.activity.type}"):
            await asyncio.to_thread(self.refused, turn)  # audited, not answered
        return True

    def refused(self, turn: Turn) -> dict:
        """(In a worker thread.) The refusal, audited; its card."""
        err = InvalidInput(NOT_AVAILABLE)
        self.lic.audit.record_refusal(turn.actor, AuditAction.TENANT_REFUSED, err, turn.actor.tenant_id or "(none)")
        return common.error_card(turn.locale, err.message, heading=T(turn.locale)("error.not_registered.title"))


def turn_guards(lic: Licensing, *, limiter: RateLimiter | None, allowed_tenants: frozenset[str]) -> list[TurnGuard]:
    """The turn guards in their order: rate limit, then tenant allow-list (either may be off)."""
    guards: list[TurnGuard] = []
    if limiter is not None:
        guards.append(RateLimit(limiter, lic))
    if allowed_tenants:
        guards.append(TenantAllowList(allowed_tenants, lic))
    return guards
